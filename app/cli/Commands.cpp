#include "Commands.h"

#include "Error.h"
#include "runtime/Prompts.h"
#include "runtime/Runner.h"
#include "tokenizers/BpeTokenizer.h"
#include "tokenizers/ByteTokenizerJson.h"
#include "trace/ReferenceFile.h"
#include "trace/TraceFile.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <unistd.h>

namespace fs = std::filesystem;

namespace statescope::cli {

namespace {

using Clock = std::chrono::steady_clock;

class Progress {
public:
    Progress(int64_t total, bool quiet)
        : m_total(total), m_quiet(quiet), m_tty(isatty(2)), m_start(Clock::now())
    {
    }

    void update(int64_t done)
    {
        if (m_quiet)
            return;
        const double secs = std::chrono::duration<double>(Clock::now() - m_start).count();
        if (!m_tty && secs - m_lastPrint < 1.0 && done < m_total)
            return;
        m_lastPrint = secs;
        const double rate = secs > 0 ? done / secs : 0;
        std::fprintf(stderr, "%s[run] %lld/%lld tokens  %.0f tokens/s  %.1f s%s", m_tty ? "\r" : "",
                     static_cast<long long>(done), static_cast<long long>(m_total), rate, secs,
                     m_tty && done < m_total ? "" : "\n");
        std::fflush(stderr);
    }
    double seconds() const { return std::chrono::duration<double>(Clock::now() - m_start).count(); }

private:
    int64_t m_total;
    bool m_quiet, m_tty;
    Clock::time_point m_start;
    double m_lastPrint = -1;
};

Mamba2Config shapeConfig(const std::string& shape)
{
    Mamba2Config c;
    c.vocabSize = 50277;
    c.padVocabSizeMultiple = 16;
    struct Row {
        const char* name;
        int64_t d, l;
    };
    const Row rows[] = {{"130m", 768, 24},  {"370m", 1024, 48}, {"780m", 1536, 48},
                        {"1.3b", 2048, 48}, {"2.7b", 2560, 64}, {"tiny", 64, 2}};
    for (const auto& r : rows)
        if (shape == r.name) {
            c.dModel = r.d;
            c.nLayer = r.l;
            if (shape == "tiny") {
                c.dState = 16;
                c.headdim = 16;
                c.vocabSize = 512;
            }
            return c;
        }
    throw Error("--shape", "shape", "130m, 370m, 780m, 1.3b, 2.7b or tiny", "\"" + shape + "\"");
}

} // namespace

Mamba2Config shapeConfigFor(const std::string& shape)
{
    return shapeConfig(shape);
}

std::string readFile(const std::string& path, const char* what)
{
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw Error(path, std::string(what) + " does not exist");
    if (fs::is_directory(path, ec))
        throw Error(path, std::string(what) + " is a folder, not a file");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(path, std::string("cannot read the ") + what);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<int32_t> readIds(const std::string& path)
{
    const std::string text = readFile(path, "ids file");
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
            ++i;
        if (i >= text.size())
            break;
        size_t j = i;
        while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])))
            ++j;
        const std::string word = text.substr(i, j - i);
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(word.c_str(), &end, 10);
        if (end != word.c_str() + word.size() || errno == ERANGE || v < 0 || v > INT32_MAX)
            throw Error(path, "token " + std::to_string(ids.size()), "a non-negative integer id",
                        "\"" + word + "\"");
        ids.push_back(static_cast<int32_t>(v));
        i = j;
    }
    return ids;
}

DType parseDTypeArg(const std::string& s)
{
    DType d;
    if (!parseDType(s, &d))
        throw Error("--dtype", "dtype", "float32, bfloat16 or float16", "\"" + s + "\"");
    return d;
}

BpeTokenizer loadTokenizer(const std::string& requested, const std::optional<std::string>& modelTokenizer)
{
    if (!requested.empty())
        return BpeTokenizer::fromFile(requested);
    if (modelTokenizer)
        return BpeTokenizer::fromFile(*modelTokenizer);
    return BpeTokenizer::fromFile(resourcePath("tokenizers/gpt-neox-20b.json"));
}

std::string resourcePath(const std::string& relative)
{
    std::vector<fs::path> roots;
    if (const char* env = std::getenv("STATESCOPE_RESOURCES"))
        roots.emplace_back(env);
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec)
        roots.push_back(exe.parent_path().parent_path() / "share" / "statescope");
    roots.emplace_back(STATESCOPE_INSTALLED_RESOURCES_DIR);
    roots.emplace_back(STATESCOPE_RESOURCES_DIR);
    for (const auto& r : roots)
        if (fs::exists(r / relative, ec))
            return (r / relative).string();
    throw Error(relative,
                "built-in resource not found (looked in $STATESCOPE_RESOURCES, ../share/statescope, " +
                    std::string(STATESCOPE_RESOURCES_DIR) + ")");
}

int runCommand(const RunArgs& args, const std::atomic<bool>& cancel)
{
    if (args.textFile.empty() && args.idsFile.empty() && args.prompt.empty())
        throw Error("run", "input", "one of --text, --ids or --prompt", "none");
    RunOptions options;
    options.device = args.device;
    options.dtype = parseDTypeArg(args.dtype);
    options.chunkSize = args.chunkSize;
    options.threads = args.threads;
    options.reference = args.reference;

    // Read and check the input before the (slower) model, so that mistakes show at once.
    std::vector<int32_t> ids;
    std::vector<int64_t> offsets;
    std::string input;
    std::optional<BpeTokenizer> tokenizer;
    const ModelFolder folder = inspectModelFolder(args.model);
    if (!args.idsFile.empty()) {
        ids = readIds(args.idsFile);
        input = "ids: " + args.idsFile;
        if (ids.empty())
            throw Error(args.idsFile, "input is empty: no token ids");
    } else {
        std::string text;
        if (!args.textFile.empty()) {
            text = readFile(args.textFile, "text file");
            input = "text: " + args.textFile;
            if (text.empty())
                throw Error(args.textFile, "input is empty");
        } else {
            text = promptFromSpec(args.prompt);
            input = "prompt: " + args.prompt;
        }
        tokenizer = loadTokenizer(args.tokenizer, folder.tokenizerPath);
        Encoding enc;
        try {
            enc = tokenizer->encode(text);
        } catch (const Error& e) {
            throw Error(args.textFile.empty() ? "--prompt" : args.textFile, e.what());
        }
        ids = std::move(enc.ids);
        offsets = std::move(enc.offsets);
        input += " (" + std::to_string(text.size()) + " bytes, tokenizer " + tokenizer->sourceName() + ")";
        if (ids.empty())
            throw Error(args.textFile.empty() ? "--prompt" : args.textFile,
                        "input is empty after tokenization");
    }

    auto runner = Runner::open(args.model, options);
    runner->checkIds(ids, args.idsFile.empty() ? "input" : args.idsFile);

    TraceWriter writer(args.out, runner->traceHeader(input, !offsets.empty()));
    Progress progress(static_cast<int64_t>(ids.size()), args.quiet);
    try {
        runner->run(
            ids, offsets.empty() ? nullptr : &offsets,
            [&](const ChunkProbes& chunk) {
                writer.append(chunk);
                progress.update(chunk.start + chunk.count());
            },
            &cancel);
    } catch (const Cancelled&) {
        std::cerr << "\nstatescope-cli: cancelled after " << writer.tokens() << " tokens; " << args.out
                  << " holds them (completed = false)\n";
        return kExitCancelled;
    }
    writer.finish();
    const double secs = progress.seconds();
    std::cerr << "statescope-cli: " << ids.size() << " tokens in " << secs << " s ("
              << (secs > 0 ? ids.size() / secs : 0) << " tokens/s)\n";
    std::cout << args.out << "\n";
    return 0;
}

int tokenizeCommand(const std::string& tokenizerPath, const std::string& textFile)
{
    const BpeTokenizer tok = loadTokenizer(tokenizerPath, std::nullopt);
    const std::string text = readFile(textFile, "text file");
    Encoding enc;
    try {
        enc = tok.encode(text);
    } catch (const Error& e) {
        throw Error(textFile, e.what());
    }
    std::string line;
    for (size_t i = 0; i < enc.ids.size(); ++i) {
        if (i)
            line += ' ';
        line += std::to_string(enc.ids[i]);
    }
    std::cout << line << "\n";
    return 0;
}

int infoCommand(const std::string& model)
{
    RunOptions options;
    auto runner = Runner::open(model, options);
    const ModelInfo& i = runner->info();
    const Mamba2Config& c = i.mamba2;
    std::printf("model:            %s\n", i.path.c_str());
    std::printf("architecture:     %s (%s layout)\n", i.architecture.c_str(), i.layout.c_str());
    std::printf("parameters:       %lld (%.1f M)\n", static_cast<long long>(i.parameters),
                i.parameters / 1e6);
    std::printf("layers:           %lld\n", static_cast<long long>(i.layers));
    std::printf("heads:            %lld per layer (headdim %lld, d_state %lld, ngroups %lld)\n",
                static_cast<long long>(i.heads), static_cast<long long>(c.headdim),
                static_cast<long long>(c.dState), static_cast<long long>(c.ngroups));
    std::printf("d_model:          %lld (d_inner %lld, d_conv %lld)\n", static_cast<long long>(c.dModel),
                static_cast<long long>(c.dInner()), static_cast<long long>(c.dConv));
    std::printf("vocabulary:       %lld (padded)\n", static_cast<long long>(i.vocabSize));
    std::printf("state size N_S:   %lld elements (%.3f M: SSM %lld + conv %lld)\n",
                static_cast<long long>(i.stateSize), i.stateSize / 1e6,
                static_cast<long long>(c.nLayer * c.nHeads() * c.headdim * c.dState),
                static_cast<long long>(c.nLayer * c.convDim() * (c.dConv - 1)));
    if (i.forgetThreshold > 0)
        std::printf("T_forget (fit):   %.0f tokens (5.172 * N_S[M] - 4.469, in K tokens)\n",
                    i.forgetThreshold);
    else // the paper's line crosses zero at N_S = 0.864 M; it was fitted on BPE models of 1 M and more
        std::printf(
            "T_forget (fit):   none (the fit 5.172 * N_S[M] - 4.469 K tokens is negative below 0.864 M)\n");
    if (i.trainingLength)
        std::printf("training length:  %lld tokens (model card)\n",
                    static_cast<long long>(*i.trainingLength));
    std::printf("tokenizer:        %s\n",
                i.tokenizerPath ? i.tokenizerPath->c_str() : "(none: GPT-NeoX-20B built in)");
    return 0;
}

int benchCommand(const BenchArgs& args)
{
    RunOptions options;
    options.device = args.device;
    options.dtype = parseDTypeArg(args.dtype);
    options.chunkSize = args.chunkSize;
    options.threads = args.threads;
    auto runner = args.model.empty() ? Runner::openRandom(shapeConfig(args.shape), 1234, options)
                                     : Runner::open(args.model, options);
    const ModelInfo& info = runner->info();
    std::printf("bench: %s, %.1f M parameters, %lld layers x %lld heads, device %s, dtype %s, chunk %lld, "
                "threads %d, trace %s\n",
                args.model.empty() ? ("random " + args.shape).c_str() : args.model.c_str(),
                info.parameters / 1e6, static_cast<long long>(info.layers),
                static_cast<long long>(info.heads), info.device.c_str(), info.dtype.c_str(),
                static_cast<long long>(args.chunkSize), args.threads, args.trace ? "on" : "off");
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> dist(
        0, static_cast<int32_t>(std::min<int64_t>(info.vocabSize, 50277) - 1));
    const fs::path dir = fs::temp_directory_path() / ("statescope-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ostringstream json;
    json << "{\"shape\": \"" << args.shape << "\", \"device\": \"" << info.device << "\", \"dtype\": \""
         << info.dtype << "\", \"chunk_size\": " << args.chunkSize << ", \"results\": [";
    std::printf("%10s %10s %12s\n", "tokens", "seconds", "tokens/s");
    bool first = true;
    for (int64_t T : args.tokens) {
        std::vector<int32_t> ids(static_cast<size_t>(T));
        for (auto& id : ids)
            id = dist(rng);
        // Warm-up: allocator, kernels, first-touch of the weights.
        runner->reset();
        runner->run(std::vector<int32_t>(ids.begin(), ids.begin() + std::min<int64_t>(T, args.chunkSize)),
                    nullptr, [](const ChunkProbes&) {});
        runner->synchronize();
        double best = 1e300;
        for (int r = 0; r < args.repeat; ++r) {
            runner->reset();
            std::unique_ptr<TraceWriter> writer;
            const std::string path = (dir / ("bench-" + std::to_string(T) + ".h5")).string();
            const auto start = Clock::now();
            if (args.trace)
                writer = std::make_unique<TraceWriter>(path, runner->traceHeader("bench", false));
            runner->run(ids, nullptr, [&](const ChunkProbes& c) {
                if (writer)
                    writer->append(c);
            });
            if (writer)
                writer->finish();
            runner->synchronize();
            writer.reset();
            std::remove(path.c_str());
            best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
        }
        std::printf("%10lld %10.3f %12.0f\n", static_cast<long long>(T), best, T / best);
        std::fflush(stdout);
        json << (first ? "" : ", ") << "{\"tokens\": " << T << ", \"seconds\": " << best
             << ", \"tokens_per_s\": " << T / best << "}";
        first = false;
    }
    json << "]}\n";
    // Not fs::remove_all: it crashed with PyTorch's LibTorch on the GPU machine (directory iteration
    // across two C++ runtimes); the bench knows the files it wrote.
    ::rmdir(dir.c_str());
    if (!args.json.empty()) {
        std::ofstream out(args.json);
        out << json.str();
    }
    return 0;
}

int checkCommand(const CheckArgs& args)
{
    if (args.device.rfind("cuda", 0) == 0 && !Runner::cudaAvailable() && args.skipIfUnavailable) {
        std::cout << "check: CUDA not available, skipped\n";
        return kExitSkipped;
    }
    const ReferenceData ref = readReferenceFile((fs::path(args.fixture) / "reference.h5").string());
    bool ok = true;
    for (int64_t chunk : args.chunkSizes) {
        RunOptions options;
        options.device = args.device;
        options.dtype = parseDTypeArg(args.dtype);
        options.chunkSize = chunk;
        options.reference = args.reference;
        auto runner = Runner::open(args.fixture, options);
        std::vector<float> nll;
        std::vector<std::vector<float>> probes(ref.probeNames.size());
        const auto descs = runner->probes();
        runner->run(ref.ids, nullptr, [&](const ChunkProbes& c) {
            nll.insert(nll.end(), c.nll.begin(), c.nll.end());
            for (size_t p = 0; p < probes.size(); ++p)
                for (size_t d = 0; d < descs.size(); ++d)
                    if (descs[d].name == ref.probeNames[p])
                        probes[p].insert(probes[p].end(), c.values[d].begin(), c.values[d].end());
        });
        std::printf("check %s: %s %s chunk %lld%s\n", args.fixture.c_str(), args.device.c_str(),
                    args.dtype.c_str(), static_cast<long long>(chunk),
                    args.reference ? " (reference path)" : "");
        auto report = [&](const std::string& name, const std::vector<float>& got,
                          const std::vector<double>& want) {
            double err = got.size() == want.size() ? maxRelativeError(got.data(), want.data(), want.size())
                                                   : std::numeric_limits<double>::infinity();
            const bool pass = err <= args.rtol;
            ok = ok && pass;
            std::printf("  %-11s max rel err %.3e  %s\n", name.c_str(), err, pass ? "ok" : "FAIL");
        };
        report("nll", nll, ref.nll);
        for (size_t p = 0; p < probes.size(); ++p)
            report(ref.probeNames[p], probes[p], ref.probes[p]);
    }
    std::printf("%s\n", ok ? "check passed" : "check FAILED");
    return ok ? 0 : kExitError;
}

} // namespace statescope::cli

namespace statescope::cli {

int initCommand(const InitArgs& args)
{
    Mamba2Config c = shapeConfig(args.shape);
    if (args.dModel)
        c.dModel = args.dModel;
    if (args.layers)
        c.nLayer = args.layers;
    if (args.dState)
        c.dState = args.dState;
    if (args.headdim)
        c.headdim = args.headdim;
    if (args.ngroups)
        c.ngroups = args.ngroups;
    if (args.byteVocab) {
        c.vocabSize = 256;
        c.padVocabSizeMultiple = 16;
    }
    std::error_code ec;
    if (fs::exists(fs::path(args.out) / "config.json", ec))
        throw Error(args.out, "already holds a model (config.json); choose another folder");
    Runner::writeRandomModel(c, args.seed, args.out);
    if (args.byteVocab) {
        std::ofstream tok(fs::path(args.out) / "tokenizer.json");
        tok << byteLevelTokenizerJson();
    }
    std::ofstream card(fs::path(args.out) / "model_card.json");
    card << "{\n  \"name\": \"" << fs::path(args.out).filename().string()
         << "\",\n  \"architecture\": \"mamba2\",\n"
         << "  \"d_model\": " << c.dModel << ", \"n_layer\": " << c.nLayer << ", \"d_state\": " << c.dState
         << ", \"headdim\": " << c.headdim << ",\n  \"state_size\": " << c.stateSize()
         << ",\n  \"training_length\": null,\n  \"data\": \"none: random weights (seed " << args.seed
         << ")\",\n  \"steps\": 0\n}\n";
    std::cout << args.out << "\n";
    return 0;
}

} // namespace statescope::cli
