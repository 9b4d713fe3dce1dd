#include "Commands.h"

#include "Error.h"
#include "kernels/KernelCheck.h"
#include "models/Mitigation.h"
#include "runtime/Input.h"
#include "runtime/Passkey.h"
#include "runtime/Profiler.h"
#include "runtime/Prompts.h"
#include "runtime/Runner.h"
#include "tokenizers/ByteTokenizerJson.h"
#include "tokenizers/Tokenizer.h"
#include "trace/AsyncTraceWriter.h"
#include "trace/ReferenceFile.h"
#include "trace/TraceFile.h"
#include "util/Resources.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <sys/stat.h>
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

} // namespace

std::string shapeOverrides(int64_t dModel, int64_t layers, int64_t dState, int64_t headdim, int64_t ngroups)
{
    nlohmann::json o = nlohmann::json::object();
    if (dModel)
        o["hidden_size"] = dModel;
    if (layers)
        o["num_hidden_layers"] = layers;
    if (dState)
        o["state_size"] = dState;
    if (headdim)
        o["head_dim"] = headdim;
    if (ngroups)
        o["n_groups"] = ngroups;
    return o.dump();
}

DType parseDTypeArg(const std::string& s)
{
    DType d;
    if (!parseDType(s, &d))
        throw Error("--dtype", "dtype", "float32, bfloat16, float16 or float64", "\"" + s + "\"");
    return d;
}

RunOptions runOptions(const std::string& device, const std::string& dtype, int64_t chunkSize, int threads,
                      const std::string& mitigate)
{
    RunOptions options;
    options.device = device;
    options.dtype = parseDTypeArg(dtype);
    options.chunkSize = chunkSize;
    options.threads = threads;
    options.mitigation = parseMitigation(mitigate);
    return options;
}

std::string flagMessage(const std::string& message)
{
    static const std::pair<const char*, const char*> kFlags[] = {
        {"device: ", "--device: "},     {"dtype: ", "--dtype: "},   {"shape: ", "--shape: "},
        {"architecture: ", "--arch: "}, {"prompt: ", "--prompt: "}, {"chunk_size: ", "--chunk-size: "},
        {"dt_init: ", "--dt-init: "},   {"a_init: ", "--a-init: "}};
    for (const auto& [field, flag] : kFlags)
        if (message.rfind(field, 0) == 0)
            return flag + message.substr(std::string(field).size());
    return message;
}

// --probe-detail summary | full | layer, --probes a,b,c and --probe-precision into the run's options.
void applyProbeArgs(const std::string& detail, const std::string& probes, const std::string& precision,
                    RunOptions* options)
{
    if (detail == "summary" || detail == "layer")
        options->probeDetail = ProbeDetail::Summary;
    else if (detail == "full")
        options->probeDetail = ProbeDetail::Full;
    else
        throw Error("--probe-detail", "probe detail", "summary, full or layer", "\"" + detail + "\"");
    options->probeSelection.layerSummaries = detail == "layer";
    options->probeSelection.names.clear();
    std::string name;
    for (size_t i = 0; i <= probes.size(); ++i) {
        if (i == probes.size() || probes[i] == ',') {
            if (!name.empty())
                options->probeSelection.names.push_back(name);
            name.clear();
        } else if (probes[i] != ' ') {
            name += probes[i];
        }
    }
    options->probePrecision = parseProbePrecision(precision, "--probe-precision");
}

// "float16 (chosen by auto), dt derived from decay": how a trace stores its probes.
std::string probeStorage(const TraceHeader& h)
{
    std::string s = probePrecisionName(h.probePrecision);
    if (h.runSettings.find("\"probe_precision_chosen_by\"") != std::string::npos)
        s += " (chosen by auto)";
    for (const ProbeDesc& p : h.probes)
        if (!p.derivedFrom.empty())
            s += ", " + p.name + " derived from " + p.derivedFrom;
    return s;
}

int runCommand(const RunArgs& args, const std::atomic<bool>& cancel)
{
    RunOptions options = runOptions(args.device, args.dtype, args.chunkSize, args.threads, args.mitigate);
    options.reference = args.reference;
    applyProbeArgs(args.probeDetail, args.probes, args.probePrecision, &options);
    options.chunksForTraceOnly = true; // the chunks go to the trace alone
    if (args.oldContext < 0)
        throw Error("--old-context", "window", "a number of tokens, 0 (off) or more",
                    std::to_string(args.oldContext));
    options.oldContext = args.oldContext;

    // Read and check the input before the (slower) model, so that mistakes show at once.
    InputRequest request;
    request.textFile = args.textFile;
    request.idsFile = args.idsFile;
    request.prompt = args.prompt;
    request.tokenizer = args.tokenizer;
    if (args.textFile.empty() && args.idsFile.empty() && args.prompt.empty())
        throw Error("run", "input", "one of --text, --ids or --prompt", "none");
    const ModelFolder folder = inspectModelFolder(args.model);
    const PreparedInput input = prepareInput(request, folder.tokenizerPath);

    auto runner = Runner::open(args.model, options);
    runner->checkIds(input.ids, args.idsFile.empty() ? "input" : args.idsFile);
    calibrateForRun(*runner, args.calibrate, chooseTokenizerPath(args.tokenizer, folder.tokenizerPath),
                    input.ids, args.idsFile.empty() ? "the input" : args.idsFile);

    const TraceHeader header = runner->traceHeader(input.source, input.description, !input.offsets.empty());
    AsyncTraceWriter writer(args.out, header, args.chunkSize);
    Progress progress(static_cast<int64_t>(input.ids.size()), args.quiet);
    try {
        RunLoop loop;
        loop.beforeChunk = [&cancel] { return !cancel.load(); };
        loop.onChunk = [&](ChunkProbes& chunk) {
            const int64_t done = chunk.start + chunk.count();
            writer.append(std::move(chunk));
            progress.update(done);
        };
        loop.valuesInPlace = true; // the writer reads them where the engine left them
        runner->run(input.ids, input.offsets.empty() ? nullptr : &input.offsets, loop);
    } catch (const Cancelled&) {
        writer.flush(); // what was computed is on disk before we say so
        std::cerr << "\nstatescope-cli: cancelled after " << writer.tokens() << " tokens; " << args.out
                  << " holds them (completed = false)\n";
        return kExitCancelled;
    }
    writer.finish();
    const double secs = progress.seconds();
    std::cerr << "statescope-cli: " << input.ids.size() << " tokens in " << secs << " s ("
              << (secs > 0 ? input.ids.size() / secs : 0) << " tokens/s)\n";
    std::cerr << "statescope-cli: probes stored as " << probeStorage(header) << "\n";
    std::cout << args.out << "\n";
    return 0;
}

int passkeyCommand(const PasskeyArgs& args, const std::atomic<bool>& cancel)
{
    RunOptions options = runOptions(args.device, args.dtype, args.chunkSize, args.threads, args.mitigate);
    options.cudaGraph = !args.noCudaGraph;

    PasskeySettings settings;
    settings.model = args.model;
    settings.lengths = parseLengths(args.lengths);
    settings.samples = args.samples;
    settings.seed = args.seed;
    settings.maxNewTokens = args.maxNewTokens;
    settings.batch = args.batch;
    settings.mitigation = options.mitigation.describe();
    if (args.samples < 1 || args.batch < 1 || args.maxNewTokens < 0)
        throw Error("passkey", "--samples, --batch and --max-new-tokens", "1 or more",
                    std::to_string(args.samples) + ", " + std::to_string(args.batch) + ", " +
                        std::to_string(args.maxNewTokens));
    // The samples to trace, checked before anything runs.
    std::vector<std::pair<int64_t, int64_t>> traced;
    for (const std::string& spec : args.traces) {
        const size_t colon = spec.find(':');
        const std::vector<int64_t> length = parseLengths(spec.substr(0, colon));
        int64_t index = -1;
        try {
            index = colon == std::string::npos ? -1 : std::stoll(spec.substr(colon + 1));
        } catch (const std::exception&) {
        }
        if (length.size() != 1 || index < 0 || index >= args.samples ||
            std::find(settings.lengths.begin(), settings.lengths.end(), length[0]) == settings.lengths.end())
            throw Error("--trace", "sample",
                        "LENGTH:INDEX with a length of --lengths and an index below --samples",
                        "\"" + spec + "\"");
        traced.emplace_back(length[0], index);
    }

    const ModelFolder folder = inspectModelFolder(args.model);
    settings.tokenizer = chooseTokenizerPath(args.tokenizer, folder.tokenizerPath);
    const Tokenizer tokenizer = Tokenizer::fromFile(settings.tokenizer);
    if (settings.maxNewTokens == 0)
        settings.maxNewTokens = passkeyAnswerTokens(tokenizer);
    const PasskeyFileLock lock(args.out);
    std::vector<PasskeyResult> results = readPasskeyFile(args.out, settings);
    if (!results.empty() && !args.quiet)
        std::cerr << "statescope-cli: resuming " << args.out << ": " << results.size() << " samples done\n";
    auto runner = Runner::open(args.model, options);
    if (runner->mitigation().normalises()) {
        // Without --calibrate: a haystack of T_train tokens, the passkey prompt the model trained on.
        const int64_t length = runner->info().trainingLength.value_or(settings.lengths.front());
        calibrateForRun(*runner, args.calibrate, settings.tokenizer,
                        makePasskeySample(tokenizer, length, 0, 1, settings.seed).ids,
                        "a passkey prompt of " + std::to_string(length) + " tokens");
    }

    const auto started = std::chrono::steady_clock::now();
    size_t reported = results.size();
    try {
        runPasskeySweep(
            *runner, tokenizer, settings, &results,
            [&](const std::vector<PasskeyResult>& all) {
                writePasskeyFile(args.out, settings, all);
                if (args.quiet || all.size() == reported)
                    return;
                const int64_t length = all.back().length;
                int64_t hits = 0, n = 0;
                for (const PasskeyResult& r : all)
                    if (r.length == length) {
                        hits += r.correct;
                        ++n;
                    }
                reported = all.size();
                const double secs =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
                std::fprintf(stderr,
                             "statescope-cli: length %lld: %lld/%lld correct (%.0f%%), %.1f s so far\n",
                             static_cast<long long>(length), static_cast<long long>(hits),
                             static_cast<long long>(n), n ? 100.0 * hits / n : 0.0, secs);
            },
            &cancel);
    } catch (const Cancelled&) {
        std::cerr << "\nstatescope-cli: cancelled; " << args.out << " holds the " << results.size()
                  << " samples of the lengths finished (run again to resume)\n";
        return kExitCancelled;
    }
    writePasskeyFile(args.out, settings, results);

    for (const auto& [length, index] : traced) {
        const PasskeySample s = makePasskeySample(tokenizer, length, index, settings.samples, settings.seed);
        const std::string base = args.out.size() > 3 && args.out.compare(args.out.size() - 3, 3, ".h5") == 0
                                     ? args.out.substr(0, args.out.size() - 3)
                                     : args.out;
        const std::string path = base + "-" + std::to_string(length) + "-" + std::to_string(index) + ".h5";
        PreparedInput input;
        input.ids = s.ids;
        input.text = s.text;
        input.offsets = tokenizer.encode(s.text).offsets;
        input.source.kind = "prompt";
        input.source.prompt = "passkey sweep " + args.out + ": length " + std::to_string(length) +
                              ", sample " + std::to_string(index);
        input.source.tokenizer = std::filesystem::path(settings.tokenizer).filename().string();
        input.source.tokenizerPath = std::filesystem::absolute(settings.tokenizer).string();
        input.description = "passkey prompt: " + std::to_string(s.ids.size()) + " tokens, key " + s.passkey +
                            " at depth " + std::to_string(s.depth).substr(0, 5);
        locateNeedle(&input);
        runner->reset();
        TraceWriter writer(path, runner->traceHeader(input.source, input.description, true));
        runner->run(
            input.ids, &input.offsets, [&](const ChunkProbes& chunk) { writer.append(chunk); }, &cancel);
        writer.finish();
        std::cerr << "statescope-cli: traced " << path << "\n";
    }

    // The heatmap, as text: one row a length, one column a depth bin.
    const int bins = static_cast<int>(std::min<int64_t>(10, settings.samples));
    const std::vector<double> grid = passkeyGrid(results, settings.lengths, bins);
    std::printf("%10s", "length");
    for (int b = 0; b < bins; ++b)
        std::printf(" %5.2f", (b + 0.5) / bins);
    std::printf("   all\n");
    for (size_t l = 0; l < settings.lengths.size(); ++l) {
        std::printf("%10lld", static_cast<long long>(settings.lengths[l]));
        double sum = 0;
        int n = 0;
        for (int b = 0; b < bins; ++b) {
            const double v = grid[l * static_cast<size_t>(bins) + static_cast<size_t>(b)];
            std::printf(std::isnan(v) ? "     -" : " %5.2f", v);
            if (!std::isnan(v)) {
                sum += v;
                ++n;
            }
        }
        std::printf(n ? " %5.2f\n" : "     -\n", n ? sum / n : 0.0);
    }
    const int64_t recall = passkeyRecallLength(results, settings.lengths);
    if (recall > 0)
        std::printf("T_recall %lld (the longest length with at least 95%% mean accuracy)\n",
                    static_cast<long long>(recall));
    else
        std::printf("T_recall none (no length reaches 95%% mean accuracy)\n");
    std::printf("%s\n", args.out.c_str());
    return 0;
}

int generateCommand(const GenerateArgs& args)
{
    RunOptions options = runOptions(args.device, args.dtype, args.chunkSize, args.threads, args.mitigate);
    options.reference = args.reference;
    options.cudaGraph = !args.noCudaGraph;
    if (args.maxNewTokens < 0)
        throw Error("--max-new-tokens", "count", "0 or more", std::to_string(args.maxNewTokens));

    std::vector<std::vector<int32_t>> prompts;
    std::unique_ptr<Runner> runner;
    std::shared_ptr<const Tokenizer> tokenizer;
    std::string tokenizerPath = args.tokenizer; // for --calibrate's text
    if (args.model.empty()) {
        if (args.shape.empty())
            throw Error("generate", "model", "--model DIR, or --shape for random weights", "neither");
        if (args.promptTokens <= 0 || args.batch <= 0)
            throw Error("generate", "random prompt", "--prompt-tokens N and --batch B above 0 with --shape",
                        std::to_string(args.promptTokens) + " tokens, batch " + std::to_string(args.batch));
        runner = Runner::openRandom(args.architecture, Runner::shapeConfig(args.architecture, args.shape),
                                    1234, options);
        std::mt19937 rng(42);
        std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(runner->info().vocabSize - 1));
        for (int64_t b = 0; b < args.batch; ++b) {
            std::vector<int32_t> ids(static_cast<size_t>(args.promptTokens));
            for (int32_t& id : ids)
                id = pick(rng);
            prompts.push_back(std::move(ids));
        }
    } else {
        InputRequest request;
        request.textFile = args.textFile;
        request.idsFile = args.idsFile;
        request.prompt = args.prompt;
        request.tokenizer = args.tokenizer;
        if (args.textFile.empty() && args.idsFile.empty() && args.prompt.empty())
            throw Error("generate", "input", "one of --text, --ids or --prompt", "none");
        const ModelFolder folder = inspectModelFolder(args.model);
        const PreparedInput input = prepareInput(request, folder.tokenizerPath);
        if (input.ids.empty())
            throw Error("generate", "prompt", "at least one token", "none");
        tokenizerPath = chooseTokenizerPath(args.tokenizer, folder.tokenizerPath);
        if (args.idsFile.empty() || !args.tokenizer.empty() || folder.tokenizerPath)
            tokenizer = std::make_shared<Tokenizer>(Tokenizer::fromFile(tokenizerPath));
        runner = Runner::open(args.model, options);
        runner->checkIds(input.ids, args.idsFile.empty() ? "input" : args.idsFile);
        prompts.push_back(input.ids);
    }

    calibrateForRun(*runner, args.calibrate, tokenizerPath, prompts.front(), "the prompt");
    const Generation g = runner->generate(prompts, args.maxNewTokens, tokenizer ? tokenizer->vocabSize() : 0);
    for (const std::vector<int32_t>& tokens : g.tokens) {
        if (tokenizer && !args.printIds) {
            std::cout << tokenizer->decode(tokens) << "\n";
        } else {
            for (size_t i = 0; i < tokens.size(); ++i)
                std::cout << (i ? " " : "") << tokens[i];
            std::cout << "\n";
        }
    }
    const auto batch = static_cast<int64_t>(prompts.size());
    const double prefillRate = g.prefillSeconds > 0 ? batch * g.promptTokens / g.prefillSeconds : 0;
    // The first new token comes from the prefill; each further one is a step of the whole batch.
    const int64_t steps = std::max<int64_t>(0, args.maxNewTokens - 1);
    const double decodeRate = g.decodeSeconds > 0 ? batch * steps / g.decodeSeconds : 0;
    std::fprintf(stderr,
                 "statescope-cli: prefill %lld x %lld tokens in %.3f s (%.0f tokens/s); decode %lld x %lld "
                 "steps in %.3f s (%.1f tokens/s%s)\n",
                 static_cast<long long>(batch), static_cast<long long>(g.promptTokens), g.prefillSeconds,
                 prefillRate, static_cast<long long>(batch), static_cast<long long>(steps), g.decodeSeconds,
                 decodeRate, g.cudaGraph ? ", CUDA graph" : "");
    if (!args.json.empty()) {
        nlohmann::ordered_json j;
        j["model"] = runner->info().path;
        j["shape"] = args.shape;
        j["device"] = args.device;
        j["dtype"] = args.dtype;
        j["batch"] = batch;
        j["prompt_tokens"] = g.promptTokens;
        j["new_tokens"] = args.maxNewTokens;
        j["prefill_seconds"] = g.prefillSeconds;
        j["prefill_tokens_per_second"] = prefillRate;
        j["decode_steps"] = steps;
        j["decode_seconds"] = g.decodeSeconds;
        j["decode_tokens_per_second"] = decodeRate;
        j["cuda_graph"] = g.cudaGraph;
        j["tokens"] = g.tokens;
        std::ofstream f(args.json);
        f << j.dump(2) << "\n";
        if (!f)
            throw Error(args.json, "could not be written");
    }
    return 0;
}

int tokenizeCommand(const std::string& tokenizerPath, const std::string& textFile, bool stats)
{
    constexpr size_t kPrintBlockBytes = 1 << 16;
    // A .txt is a World-tokenizer vocabulary; anything else a Hugging Face tokenizer.json.
    const Tokenizer tokenizer = Tokenizer::fromFile(chooseTokenizerPath(tokenizerPath, std::nullopt));
    const std::string text = readWholeFile(textFile, "text file");
    // Printed as they come, in blocks: 50 MB of text is 50M byte-level tokens, whose ids, offsets and
    // text would otherwise be held all at once.
    std::string block;
    block.reserve(kPrintBlockBytes + 16);
    bool first = true;
    int64_t tokens = 0;
    const auto started = std::chrono::steady_clock::now();
    auto sink = [&](int32_t id, int64_t, int64_t) {
        ++tokens;
        if (!first)
            block += ' ';
        first = false;
        block += std::to_string(id);
        if (block.size() >= kPrintBlockBytes) {
            std::cout.write(block.data(), static_cast<std::streamsize>(block.size()));
            block.clear();
        }
    };
    try {
        tokenizer.encode(text, sink);
    } catch (const Error& e) {
        throw Error(textFile, e.what());
    }
    block += '\n';
    std::cout.write(block.data(), static_cast<std::streamsize>(block.size()));
    std::cout.flush();
    if (stats) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        std::fprintf(
            stderr, "statescope-cli: %zu bytes, %lld tokens in %.3f s: %.2f MB/s (ids printed too)\n",
            text.size(), static_cast<long long>(tokens), secs, secs > 0 ? text.size() / secs / 1e6 : 0.0);
    }
    return 0;
}

int infoCommand(const std::string& model)
{
    RunOptions options;
    auto runner = Runner::open(model, options);
    const ModelInfo& i = runner->info();
    const ModelShape& s = i.shape;
    std::printf("model:            %s\n", i.path.c_str());
    std::printf("architecture:     %s (%s, %s layout)\n", s.displayName.c_str(), s.architecture.c_str(),
                s.layout.c_str());
    std::printf("parameters:       %lld (%.1f M)\n", static_cast<long long>(i.parameters),
                i.parameters / 1e6);
    for (const auto& [key, value] : s.details)
        std::printf("%-17s %s\n", (key + ":").c_str(), value.c_str());
    std::printf("probe units:      %lld %ss per layer\n", static_cast<long long>(s.units),
                s.unitName.c_str());
    std::printf("vocabulary:       %lld (padded)\n", static_cast<long long>(i.vocabSize));
    std::printf("state size N_S:   %lld elements (%.3f M; %s)\n", static_cast<long long>(s.stateSize),
                s.stateSize / 1e6, s.stateSizeDefinition.c_str());
    if (i.forgetThreshold)
        std::printf("T_forget (fit):   %.0f tokens (5.172 * N_S[M] - 4.469, in K = 1024 tokens)\n",
                    *i.forgetThreshold);
    else if (!s.forgetFitNote.empty())
        std::printf("T_forget (fit):   not applicable (%s)\n", s.forgetFitNote.c_str());
    else // the paper's line crosses zero at N_S = 0.864 M; it was fitted on BPE models of 1 M and more
        std::printf(
            "T_forget (fit):   none (the fit 5.172 * N_S[M] - 4.469 K tokens is negative below 0.864 M)\n");
    if (i.trainingLength)
        std::printf("training length:  %lld tokens (model card)\n",
                    static_cast<long long>(*i.trainingLength));
    std::printf("probes:          ");
    for (const auto& p : runner->probes())
        std::printf(" %s", p.name.c_str());
    std::printf("\n");
    std::printf("tokenizer:        %s\n",
                i.tokenizerPath ? i.tokenizerPath->c_str() : "(none: GPT-NeoX-20B built in)");
    return 0;
}

namespace {

// Where a run's time went, on the engine's thread and the trace writer's: what bounds it.
std::string benchTimings(const Runner& runner, const AsyncTraceWriter* writer)
{
    const RunTimings t = runner.timings();
    char line[512];
    std::snprintf(
        line, sizeof line,
        "           engine thread, %lld chunks: launch %.3f s (probes %.3f s), waiting for the device "
        "%.3f s, copy out %.3f s, handing on %.3f s\n",
        static_cast<long long>(t.chunks), t.launch, t.probes, t.waitDevice, t.copyOut, t.handOn);
    std::string out = line;
    if (writer) {
        const TraceWriteTimings w = writer->writerTimings();
        std::snprintf(line, sizeof line,
                      "           trace writer: busy %.3f s (encode %.3f s, waiting for compression %.3f s, "
                      "HDF5 %.3f s); the engine waited %.3f s for room in its queue; of %lld chunks, %lld "
                      "stored unfiltered, %lld literal-coded (%lld to catch up), the rest deflated\n",
                      writer->busySeconds(), w.encode, w.compressWait, w.write, writer->appendWaitSeconds(),
                      static_cast<long long>(w.chunks), static_cast<long long>(w.chunksUnfiltered),
                      static_cast<long long>(w.chunksLiterals), static_cast<long long>(w.chunksBehind));
        out += line;
    }
    return out;
}

} // namespace

int benchCommand(const BenchArgs& args)
{
    RunOptions options = runOptions(args.device, args.dtype, args.chunkSize, args.threads);
    applyProbeArgs(args.probeDetail, args.probes, args.probePrecision, &options);
    options.chunksForTraceOnly = args.trace; // traced runs: the chunks go to the trace alone
    auto runner = args.model.empty()
                      ? Runner::openRandom(args.architecture,
                                           Runner::shapeConfig(args.architecture, args.shape), 1234, options)
                      : Runner::open(args.model, options);
    const ModelInfo& info = runner->info();
    std::printf("bench: %s, %s, %.1f M parameters, %lld layers x %lld %ss, device %s, dtype %s, chunk %lld, "
                "threads %d, trace %s\n",
                args.model.empty() ? ("random " + args.shape).c_str() : args.model.c_str(),
                info.shape.displayName.c_str(), info.parameters / 1e6,
                static_cast<long long>(info.shape.layers), static_cast<long long>(info.shape.units),
                info.shape.unitName.c_str(), info.device.c_str(), info.dtype.c_str(),
                static_cast<long long>(args.chunkSize), args.threads, args.trace ? "on" : "off");
    const TraceHeader benchHeader = runner->traceHeader(TraceInput{"ids"}, "bench", false);
    if (args.trace)
        std::printf("probes stored as %s\n", probeStorage(benchHeader).c_str());
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> dist(
        0, static_cast<int32_t>(std::min<int64_t>(info.vocabSize, 50277) - 1));
    const fs::path dir = fs::temp_directory_path() / ("statescope-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ostringstream json;
    json << "{\"architecture\": \"" << info.shape.architecture << "\", \"shape\": \"" << args.shape
         << "\", \"device\": \"" << info.device << "\", \"dtype\": \"" << info.dtype
         << "\", \"chunk_size\": " << args.chunkSize << ", \"results\": [";
    std::printf("%10s %10s %12s%s\n", "tokens", "seconds", "tokens/s",
                args.trace ? "  trace bytes/token" : "");
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
        long long traceBytes = 0;
        std::string timings; // of the best repeat
        for (int r = 0; r < args.repeat; ++r) {
            runner->reset();
            runner->resetTimings();
            std::unique_ptr<AsyncTraceWriter> writer;
            const std::string path = (dir / ("bench-" + std::to_string(T) + ".h5")).string();
            const auto start = Clock::now();
            if (args.trace)
                writer = std::make_unique<AsyncTraceWriter>(
                    path, runner->traceHeader(TraceInput{"ids"}, "bench", false), args.chunkSize);
            RunLoop loop;
            double firstChunk = -1; // seconds from start: when the engine handed on its first chunk
            loop.onChunk = [&](ChunkProbes& c) {
                if (firstChunk < 0)
                    firstChunk = std::chrono::duration<double>(Clock::now() - start).count();
                if (writer)
                    writer->append(std::move(c));
            };
            // Every probe reaches the host; the values stay in the engine's buffer, as `run` leaves
            // them for its trace writer.
            loop.valuesInPlace = true;
            runner->run(ids, nullptr, loop);
            const auto ran = Clock::now();
            auto drained = ran;
            if (writer) {
                writer->flush();
                drained = Clock::now();
                writer->finish();
            }
            runner->synchronize();
            const auto end = Clock::now();
            const double seconds = std::chrono::duration<double>(end - start).count();
            if (seconds < best) {
                timings = benchTimings(*runner, writer.get());
                if (writer) {
                    // Where a traced run's time goes beyond the engine's: the writer's start, its
                    // tail after the last chunk, and closing the file.
                    const auto at = [&](Clock::time_point t) {
                        return std::chrono::duration<double>(t - start).count();
                    };
                    char line[256];
                    std::snprintf(line, sizeof line,
                                  "           timeline: first chunk handed on at %.3f s, engine done %.3f s, "
                                  "writer drained %.3f s, trace closed %.3f s\n",
                                  firstChunk, at(ran), at(drained), at(end));
                    timings += line;
                }
            }
            writer.reset();
            struct stat st {};
            if (args.trace && ::stat(path.c_str(), &st) == 0)
                traceBytes = static_cast<long long>(st.st_size);
            const bool keep =
                args.trace && !args.keepTrace.empty() && T == args.tokens.back() && r == args.repeat - 1;
            if (keep && std::rename(path.c_str(), args.keepTrace.c_str()) != 0)
                throw Error(args.keepTrace,
                            std::string("cannot move the trace here: ") + std::strerror(errno));
            if (!keep)
                std::remove(path.c_str());
            best = std::min(best, seconds);
        }
        std::printf("%10lld %10.3f %12.0f", static_cast<long long>(T), best, T / best);
        if (args.trace)
            std::printf("  %18.1f", static_cast<double>(traceBytes) / static_cast<double>(T));
        std::printf("\n%s", timings.c_str());
        std::fflush(stdout);
        json << (first ? "" : ", ") << "{\"tokens\": " << T << ", \"seconds\": " << best
             << ", \"tokens_per_s\": " << T / best;
        if (args.trace)
            json << ", \"trace_bytes\": " << traceBytes << ", \"probe_precision\": \""
                 << probePrecisionName(benchHeader.probePrecision) << "\", \"probe_storage\": \""
                 << probeStorage(benchHeader) << "\"";
        json << "}";
        first = false;
        if (!args.profile.empty() && T == args.tokens.back()) {
            // Untimed: the profiler's own bookkeeping slows the host side.
            runner->reset();
            Profiler profiler(args.profile);
            profiler.start();
            runner->run(ids, nullptr, [](const ChunkProbes&) {});
            profiler.stop();
            std::printf("profile of %lld tokens (trace off): %s\n", static_cast<long long>(T),
                        args.profile.c_str());
        }
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

int kernelCheckCommand(const KernelCheckArgs& args)
{
    const bool cuda = args.device.rfind("cuda", 0) == 0;
    if (args.skipIfUnavailable && (!fusedKernelsBuilt() || !cuda || !Runner::cudaAvailable())) {
        std::cout << "kernel-check: " << (fusedKernelsBuilt() ? "no CUDA device" : "fused kernels not built")
                  << ", skipped\n";
        return kExitSkipped;
    }
    const std::vector<KernelCheckResult> results = checkFusedKernels(args.device);
    int failed = 0;
    std::printf("%-22s %-52s %12s %10s\n", "kernel", "case", "max error", "tolerance");
    for (const auto& r : results) {
        std::printf("%-22s %-52s %12.3e %10.1e%s\n", r.kernel.c_str(), r.case_.c_str(), r.maxError,
                    r.tolerance, r.passed() ? "" : "  FAILED");
        failed += r.passed() ? 0 : 1;
    }
    std::printf("%zu comparisons, %d failed (errors relative to the reference's largest magnitude)\n",
                results.size(), failed);
    return failed ? 1 : 0;
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
        // A reference of every unit (e.g. each channel, where the summary groups them) is checked at full
        // probe detail.
        if (!runner->probes().empty() && runner->probes().front().shape != ref.probeShape) {
            options.probeDetail = ProbeDetail::Full;
            runner = Runner::open(args.fixture, options);
        }
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
    nlohmann::json overrides = nlohmann::json::parse(
        shapeOverrides(args.dModel, args.layers, args.dState, args.headdim, args.ngroups));
    if (args.byteVocab)
        overrides["vocab_size"] = 256;
    const std::string config = Runner::shapeConfig(args.architecture, args.shape, overrides.dump());
    std::error_code ec;
    if (fs::exists(fs::path(args.out) / "config.json", ec))
        throw Error(args.out, "already holds a model (config.json); choose another folder");
    Runner::writeRandomModel(args.architecture, config, args.seed, args.out);
    if (args.byteVocab) {
        std::ofstream tok(fs::path(args.out) / "tokenizer.json");
        tok << byteLevelTokenizerJson();
    }
    const ModelFolder folder = inspectModelFolder(args.out);
    ModelCard card;
    card.json["name"] = fs::path(args.out).filename().string();
    card.json["architecture"] = folder.shape.architecture;
    card.json["state_size"] = folder.shape.stateSize;
    card.json["training_length"] = nullptr;
    card.json["data"] = "none: random weights (seed " + std::to_string(args.seed) + ")";
    card.json["steps"] = 0;
    writeModelCard((fs::path(args.out) / "model_card.json").string(), card);
    std::cout << args.out << "\n";
    return 0;
}

} // namespace statescope::cli
