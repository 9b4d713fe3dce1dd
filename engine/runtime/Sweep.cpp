#include "runtime/Sweep.h"

#include "Error.h"
#include "io/AtomicFile.h"
#include "io/FileLock.h"
#include "io/Json.h"
#include "models/Architecture.h"
#include "models/ConfigFields.h"
#include "runtime/Runner.h"
#include "runtime/TokenCorpus.h"
#include "runtime/Trainer.h"
#include "trace/Hdf5Util.h"

#include <hdf5.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;

namespace statescope {

namespace {

// The sweep axes and the config keys (transformers dialect) they set.
const std::map<std::string, std::string>& axisKeys()
{
    static const std::map<std::string, std::string> k{{"d_state", "state_size"},
                                                      {"n_layer", "num_hidden_layers"},
                                                      {"d_model", "hidden_size"},
                                                      {"headdim", "head_dim"}};
    return k;
}

std::vector<int64_t> intList(const nlohmann::json& j, const char* key, const std::string& file,
                             int64_t minValue)
{
    if (!j.contains(key) || !j[key].is_array() || j[key].empty())
        throw Error(file, key, "a non-empty list of integers", j.contains(key) ? j[key].dump() : "nothing");
    std::vector<int64_t> v;
    std::set<int64_t> seen;
    for (const auto& x : j[key]) {
        if (!x.is_number_integer() || x.get<int64_t>() < minValue)
            throw Error(file, key, "integers of at least " + std::to_string(minValue), x.dump());
        if (!seen.insert(x.get<int64_t>()).second)
            throw Error(file, key, "distinct values", x.dump() + " twice");
        v.push_back(x.get<int64_t>());
    }
    std::sort(v.begin(), v.end());
    return v;
}

std::string resolve(const std::string& path, const std::string& specFile)
{
    if (path.empty() || fs::path(path).is_absolute())
        return path;
    return (fs::path(specFile).parent_path() / path).lexically_normal().string();
}

void writeJsonAtomically(const std::string& path, const nlohmann::ordered_json& j)
{
    writeFileAtomically(path, j.dump(1) + "\n");
}

// One job as the plan and its job.json describe it.
nlohmann::ordered_json jobJson(const SweepSpec& spec, const SweepJob& job)
{
    return {{"index", job.index},
            {"id", job.id},
            {"axis", spec.axis},
            {"axis_value", job.axisValue},
            {"state_size", job.stateSize},
            {"train_length", job.trainLength},
            {"seed", job.seed},
            {"batch", job.batch},
            {"steps", job.steps},
            {"tokens", job.tokens},
            {"eval_length", job.evalLength},
            {"init", spec.init},
            {"tokenizer",
             spec.tokenizer.empty() ? std::string("bytes") : fs::path(spec.tokenizer).filename().string()}};
}

// The bucket over whose last tokens the growth of the state norm is read, and the "paper" criterion's
// last bucket.
int64_t grainFor(int64_t trainLength)
{
    return std::max<int64_t>(16, trainLength / 8);
}

std::vector<double> coarsen(const std::vector<double>& v, int64_t grain)
{
    std::vector<double> out;
    for (int64_t from = 0; from < static_cast<int64_t>(v.size()); from += grain)
        out.push_back(meanOver(v, from, from + grain));
    return out;
}

std::vector<double> expand(const nlohmann::json& buckets, int64_t grain, int64_t length)
{
    std::vector<double> v(static_cast<size_t>(length), std::numeric_limits<double>::quiet_NaN());
    for (int64_t t = 0; t < length; ++t) {
        const auto& x = buckets.at(static_cast<size_t>(t / grain));
        if (x.is_number())
            v[t] = x.get<double>();
    }
    return v;
}

nlohmann::ordered_json evalToJson(const LengthEval& e, const std::string& domain, const std::string& text)
{
    const int64_t grain = storageGrain(e.trainingLength);
    const int64_t per = e.layers * e.heads;
    nlohmann::ordered_json j;
    j["domain"] = domain;
    j["text"] = text;
    j["length"] = e.length;
    j["training_length"] = e.trainingLength;
    j["layers"] = e.layers;
    j["heads"] = e.heads;
    j["grain"] = grain;
    j["windows"] = e.windowStarts;
    j["windows_overlap"] = e.windowsOverlap;
    auto finiteOrNull = [](const std::vector<double>& v) {
        nlohmann::json a = nlohmann::json::array();
        for (double x : v)
            a.push_back(std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr));
        return a;
    };
    j["nll"] = finiteOrNull(coarsen(e.nll, grain));
    nlohmann::json windows = nlohmann::json::array();
    for (const auto& w : e.windowNll)
        windows.push_back(finiteOrNull(coarsen(w, grain)));
    j["window_nll"] = windows;
    nlohmann::json norms = nlohmann::json::array(); // [unit][bucket]
    for (int64_t u = 0; u < per; ++u) {
        std::vector<double> unit(static_cast<size_t>(e.length));
        for (int64_t t = 0; t < e.length; ++t)
            unit[t] = e.stateNorm[t * per + u];
        norms.push_back(finiteOrNull(coarsen(unit, grain)));
    }
    j["state_norm"] = norms;
    j["log_retention"] = e.logRetention;
    if (!e.pairedNll.empty()) {
        j["paired"] = {e.pairedBegin, e.pairedEnd};
        j["paired_nll"] = finiteOrNull(coarsen(e.pairedNll, grain));
        nlohmann::json pw = nlohmann::json::array();
        for (const auto& w : e.windowPairedNll)
            pw.push_back(finiteOrNull(coarsen(w, grain)));
        j["window_paired_nll"] = pw;
    }
    return j;
}

LengthEval evalFromJson(const nlohmann::json& j)
{
    LengthEval e;
    e.length = j.at("length").get<int64_t>();
    e.trainingLength = j.at("training_length").get<int64_t>();
    e.layers = j.at("layers").get<int64_t>();
    e.heads = j.at("heads").get<int64_t>();
    const int64_t grain = j.at("grain").get<int64_t>();
    e.windowStarts = j.at("windows").get<std::vector<int64_t>>();
    e.windowsOverlap = j.at("windows_overlap").get<bool>();
    e.nll = expand(j.at("nll"), grain, e.length);
    for (const auto& w : j.at("window_nll"))
        e.windowNll.push_back(expand(w, grain, e.length));
    const int64_t per = e.layers * e.heads;
    e.stateNorm.assign(static_cast<size_t>(e.length * per), 0.0);
    const auto& norms = j.at("state_norm");
    for (int64_t u = 0; u < per; ++u) {
        const std::vector<double> unit = expand(norms.at(static_cast<size_t>(u)), grain, e.length);
        for (int64_t t = 0; t < e.length; ++t)
            e.stateNorm[t * per + u] = unit[t];
    }
    e.logRetention = j.at("log_retention").get<std::vector<std::vector<double>>>();
    if (j.contains("paired_nll")) {
        e.pairedBegin = j.at("paired").at(0).get<int64_t>();
        e.pairedEnd = j.at("paired").at(1).get<int64_t>();
        e.pairedNll = expand(j.at("paired_nll"), grain, e.length);
        for (const auto& w : j.at("window_paired_nll"))
            e.windowPairedNll.push_back(expand(w, grain, e.length));
    }
    return e;
}

LengthStats statsFor(const LengthEval& e, const ForgetCriterion& c)
{
    const auto [from, to] = criterionRange(c, e.trainingLength, e.length);
    return lengthStats(e, e.trainingLength, from, to, grainFor(e.trainingLength));
}

// The statistics of a job.json's evaluations under c; false in *exact when any was stored coarsely.
std::vector<LengthStats> storedStats(const nlohmann::json& evals, const ForgetCriterion& c, bool* exact)
{
    std::vector<LengthStats> stats;
    *exact = true;
    for (const auto& e : evals) {
        stats.push_back(statsFor(evalFromJson(e), c));
        *exact =
            *exact && storedExactly(e.at("training_length").get<int64_t>(), e.at("grain").get<int64_t>());
    }
    return stats;
}

} // namespace

// Until 2026-12-06 the curves were stored at grainFor's 16 tokens, which at T 8 and 16 averaged the
// reference window [T/2, T) with the tokens before it (the state still filling), so the report read the
// norm growth of those runs 1.3-1.6 times the run's own.
int64_t storageGrain(int64_t trainingLength)
{
    const auto [begin, end] = referenceWindow(trainingLength);
    return std::max<int64_t>(1, std::gcd(std::gcd(grainFor(trainingLength), begin), end));
}

bool storedExactly(int64_t trainingLength, int64_t grain)
{
    const auto [begin, end] = referenceWindow(trainingLength);
    return grain > 0 && begin % grain == 0 && end % grain == 0;
}

LengthStats runStats(const LengthEval& e, const ForgetCriterion& c)
{
    return statsFor(e, c);
}

LengthStats storedRunStats(const LengthEval& e, const ForgetCriterion& c)
{
    return statsFor(evalFromJson(evalToJson(e, "", "")), c);
}

std::pair<int64_t, int64_t> criterionRange(const ForgetCriterion& c, int64_t T, int64_t length)
{
    if (c.kind == "paper") // the paper compares the end of its longest evaluation
        return {std::max<int64_t>(T, length - grainFor(T)), length};
    const int64_t from = static_cast<int64_t>(std::llround(c.fromMultiple * T));
    const int64_t to = std::min<int64_t>(length, static_cast<int64_t>(std::llround(c.toMultiple * T)));
    return {std::min(from, to - 1), to};
}

double ForgetCriterion::score(const LengthStats& s) const
{
    const double x = kind == "paper"    ? s.endNll / s.maxNllWithinTraining
                     : kind == "paired" ? (s.pairedRatio > 0 ? s.pairedRatio : std::nan(""))
                                        : s.ratio;
    return std::isfinite(x) ? x : std::numeric_limits<double>::infinity();
}

ForgetVerdict judgeForgetting(const ForgetCriterion& c, const std::vector<LengthStats>& domains)
{
    ForgetVerdict v;
    if (domains.empty()) {
        v.reason = "no evaluation";
        return v;
    }
    v.score = -std::numeric_limits<double>::infinity();
    for (const LengthStats& s : domains) {
        v.score = std::max(v.score, c.score(s));
        v.normGrowth = std::max(v.normGrowth, s.normGrowth);
    }
    char buf[160];
    if (!(v.score <= c.threshold())) {
        std::snprintf(buf, sizeof buf, "%s %.3f > %.3f",
                      c.kind == "paper"    ? "end / max-within"
                      : c.kind == "paired" ? "paired loss ratio"
                                           : "loss ratio",
                      v.score, c.threshold());
        v.reason = buf;
    } else if (c.maxNormGrowth > 0 && !(v.normGrowth <= c.maxNormGrowth)) {
        std::snprintf(buf, sizeof buf, "state-norm growth %.2fx > %.2fx", v.normGrowth, c.maxNormGrowth);
        v.reason = buf;
    }
    v.forgets = v.reason.empty();
    return v;
}

SweepSpec readSweepSpec(const std::string& path)
{
    const nlohmann::json j = loadPythonJson(path);
    if (!j.is_object())
        throw Error(path, "spec", "a JSON object", j.type_name());
    // clang-format off
    static const std::set<std::string> known{
        "name",       "out",           "architecture", "shape",    "overrides",      "axis",
        "values",     "train_lengths", "seeds",        "budget",   "tokens_per_run", "tokens_per_step",
        "steps",      "batch",         "init",         "lr",       "weight_decay",   "warmup_fraction",
        "schedule",   "bf16",          "data",         "held_out", "eval_multiple",  "eval_samples",
        "eval_chunk", "criterion",     "comment",      "tokenizer", "train_lengths_by_value"};
    // clang-format on
    for (const auto& [key, value] : j.items())
        if (!known.count(key))
            throw Error(path, key, "a known key (docs/sweeps.md)", "\"" + key + "\"");
    SweepSpec s;
    s.file = path;
    s.name = stringField(j, "name", "", path);
    if (s.name.empty() || s.name.find('/') != std::string::npos)
        throw Error(path, "name", "a non-empty name without '/'", "\"" + s.name + "\"");
    s.out = resolve(stringField(j, "out", "", path), path);
    s.architecture = stringField(j, "architecture", s.architecture, path);
    if (s.architecture != "mamba2")
        throw Error(path, "architecture", "mamba2 (the trainer trains Mamba-2 only so far)",
                    "\"" + s.architecture + "\"");
    s.shape = stringField(j, "shape", s.shape, path);
    if (j.contains("overrides")) {
        if (!j["overrides"].is_object())
            throw Error(path, "overrides", "an object of config keys", j["overrides"].dump());
        s.overridesJson = j["overrides"].dump();
    }
    s.axis = stringField(j, "axis", s.axis, path);
    if (!axisKeys().count(s.axis))
        throw Error(path, "axis", "d_state, n_layer, d_model or headdim", "\"" + s.axis + "\"");
    s.axisValues = intList(j, "values", path, 1);
    s.trainLengths = intList(j, "train_lengths", path, 2);
    if (j.contains("train_lengths_by_value")) {
        const auto& byValue = j["train_lengths_by_value"];
        if (!byValue.is_object() || byValue.empty())
            throw Error(path, "train_lengths_by_value", "an object of axis value: list of T_train",
                        byValue.dump());
        std::set<int64_t> all(s.trainLengths.begin(), s.trainLengths.end());
        for (const auto& [key, list] : byValue.items()) {
            const std::string field = "train_lengths_by_value." + key;
            int64_t value = 0;
            try {
                size_t used = 0;
                value = std::stoll(key, &used);
                if (used != key.size())
                    throw std::invalid_argument(key);
            } catch (const std::exception&) {
                throw Error(path, field, "an axis value as the key", "\"" + key + "\"");
            }
            if (std::find(s.axisValues.begin(), s.axisValues.end(), value) == s.axisValues.end())
                throw Error(path, field, "one of the spec's values", "\"" + key + "\"");
            const std::vector<int64_t> lengths =
                intList(nlohmann::json{{field, list}}, field.c_str(), path, 2);
            all.insert(lengths.begin(), lengths.end());
            s.trainLengthsByValue[value] = lengths;
        }
        for (int64_t value : s.axisValues)
            s.trainLengthsByValue.emplace(value, s.trainLengths); // the rest keep train_lengths
        s.trainLengths.assign(all.begin(), all.end());
    }
    if (j.contains("seeds")) {
        s.seeds.clear();
        for (int64_t v : intList(j, "seeds", path, 0))
            s.seeds.push_back(static_cast<uint64_t>(v));
    }
    s.budget = stringField(j, "budget", s.budget, path);
    if (s.budget == "tokens") {
        s.tokensPerRun = intField(j, "tokens_per_run", 0, path, "", 1);
        s.tokensPerStep = intField(j, "tokens_per_step", s.tokensPerStep, path, "", 1);
        if (s.tokensPerRun <= 0)
            throw Error(path, "tokens_per_run", "a positive token budget per run", "nothing");
    } else if (s.budget == "steps") {
        s.steps = intField(j, "steps", 0, path, "", 1);
        s.batch = intField(j, "batch", 0, path, "", 1);
        if (s.steps <= 0 || s.batch <= 0)
            throw Error(path, "steps", "steps and batch for a budget in steps", "nothing");
    } else {
        throw Error(path, "budget", "\"tokens\" or \"steps\"", "\"" + s.budget + "\"");
    }
    s.init = stringField(j, "init", s.init, path);
    if (s.init != "default" && s.init != "slow")
        throw Error(path, "init", "\"default\" or \"slow\"", "\"" + s.init + "\"");
    s.lr = numberField(j, "lr", s.lr, path);
    s.weightDecay = numberField(j, "weight_decay", s.weightDecay, path);
    s.warmupFraction = numberField(j, "warmup_fraction", s.warmupFraction, path);
    if (!(s.lr > 0) || !(s.warmupFraction >= 0 && s.warmupFraction < 1))
        throw Error(path, "lr", "lr > 0 and warmup_fraction in [0, 1)",
                    std::to_string(s.lr) + ", " + std::to_string(s.warmupFraction));
    s.schedule = stringField(j, "schedule", s.schedule, path);
    if (s.schedule != "wsd" && s.schedule != "cosine")
        throw Error(path, "schedule", "\"wsd\" or \"cosine\"", "\"" + s.schedule + "\"");
    s.bf16 = boolField(j, "bf16", s.bf16, path);
    s.data = resolve(stringField(j, "data", "", path), path);
    if (s.data.empty())
        throw Error(path, "data", "the training corpus", "nothing");
    if (j.contains("tokenizer"))
        s.tokenizer = resolve(stringField(j, "tokenizer", "", path), path);
    if (!j.contains("held_out") || !j["held_out"].is_object() || j["held_out"].empty())
        throw Error(path, "held_out", "an object of domain name: text file",
                    j.contains("held_out") ? j["held_out"].dump() : "nothing");
    for (const auto& [name, file] : j["held_out"].items()) {
        if (!file.is_string())
            throw Error(path, "held_out." + name, "a text file", file.dump());
        s.heldOut.push_back({name, resolve(file.get<std::string>(), path)});
    }
    s.evalMultiple = intField(j, "eval_multiple", s.evalMultiple, path, "", 2, 4096);
    s.evalSamples = static_cast<int>(intField(j, "eval_samples", s.evalSamples, path, "", 1, 1024));
    s.evalChunk = intField(j, "eval_chunk", s.evalChunk, path, "", 64, 1 << 20);
    if (j.contains("criterion")) {
        const auto& c = j["criterion"];
        if (!c.is_object())
            throw Error(path, "criterion", "an object", c.dump());
        const std::string file = path;
        s.criterion.kind = stringField(c, "kind", s.criterion.kind, file, "criterion.");
        if (s.criterion.kind != "ratio" && s.criterion.kind != "paired" && s.criterion.kind != "paper")
            throw Error(path, "criterion.kind", "\"ratio\", \"paired\" or \"paper\"",
                        "\"" + s.criterion.kind + "\"");
        s.criterion.fromMultiple = numberField(c, "from", s.criterion.fromMultiple, file, "criterion.");
        s.criterion.toMultiple = numberField(c, "to", s.criterion.toMultiple, file, "criterion.");
        s.criterion.tolerance = numberField(c, "tolerance", s.criterion.tolerance, file, "criterion.");
        s.criterion.paperFactor = numberField(c, "factor", s.criterion.paperFactor, file, "criterion.");
        s.criterion.maxNormGrowth =
            numberField(c, "max_norm_growth", s.criterion.maxNormGrowth, file, "criterion.");
    }
    const ForgetCriterion& c = s.criterion;
    if (!(c.fromMultiple >= 1 && c.toMultiple > c.fromMultiple && c.toMultiple <= s.evalMultiple))
        throw Error(path, "criterion",
                    "1 <= from < to <= eval_multiple (" + std::to_string(s.evalMultiple) + ")",
                    std::to_string(c.fromMultiple) + ", " + std::to_string(c.toMultiple));
    return s;
}

std::string sweepFolder(const SweepSpec& spec)
{
    return spec.out.empty() ? (fs::path(spec.file).parent_path() / spec.name).lexically_normal().string()
                            : spec.out;
}

std::vector<SweepJob> planSweep(const SweepSpec& spec)
{
    const Architecture* arch = findArchitecture(spec.architecture);
    if (!arch)
        throw Error(spec.file, "architecture", supportedArchitectures(), "\"" + spec.architecture + "\"");
    std::vector<SweepJob> jobs;
    for (int64_t value : spec.axisValues) {
        nlohmann::json overrides = nlohmann::json::parse(spec.overridesJson);
        overrides[axisKeys().at(spec.axis)] = value;
        overrides["vocab_size"] = 256; // the trainer's byte vocabulary
        const nlohmann::json config = arch->shapeConfig(spec.shape, overrides);
        if (config.is_null())
            throw Error(spec.file, "shape", "a named shape of " + spec.architecture,
                        "\"" + spec.shape + "\"");
        const ModelShape shape = arch->describe(
            config, "transformers", spec.file + " (" + spec.axis + " " + std::to_string(value) + ")",
            ProbeDetail::Summary);
        for (int64_t T : spec.lengthsFor(value))
            for (uint64_t seed : spec.seeds) {
                SweepJob job;
                job.index = static_cast<int64_t>(jobs.size());
                job.id = spec.axis + "-" + std::to_string(value) + "_T-" + std::to_string(T) + "_seed-" +
                         std::to_string(seed);
                job.axisValue = value;
                job.stateSize = shape.stateSize;
                job.trainLength = T;
                job.seed = seed;
                if (spec.budget == "tokens") {
                    job.batch = std::max<int64_t>(1, spec.tokensPerStep / T);
                    job.steps = std::max<int64_t>(1, spec.tokensPerRun / (job.batch * T));
                } else {
                    job.batch = spec.batch;
                    job.steps = spec.steps;
                }
                job.tokens = job.batch * job.steps * T;
                job.evalLength = spec.evalMultiple * T;
                jobs.push_back(job);
            }
    }
    return jobs;
}

std::string writeSweepPlan(const SweepSpec& spec, const std::vector<SweepJob>& jobs, std::string path)
{
    if (path.empty())
        path = sweepFolder(spec) + "/plan.json";
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty())
        fs::create_directories(parent);
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const SweepJob& job : jobs)
        j.push_back(jobJson(spec, job));
    writeJsonAtomically(path, j);
    return path;
}

std::vector<SweepJob> shardJobs(const std::vector<SweepJob>& jobs, int index, int count)
{
    std::vector<SweepJob> out;
    for (size_t i = static_cast<size_t>(index); i < jobs.size(); i += static_cast<size_t>(count))
        out.push_back(jobs[i]);
    return out;
}

std::vector<SweepJob> selectJobs(const std::vector<SweepJob>& jobs, const std::vector<std::string>& ids,
                                 const std::string& what)
{
    if (ids.empty())
        return jobs;
    std::vector<SweepJob> out;
    std::set<std::string> seen;
    for (const std::string& id : ids) {
        const auto it =
            std::find_if(jobs.begin(), jobs.end(), [&](const SweepJob& job) { return job.id == id; });
        if (it == jobs.end())
            throw Error(what, "job id",
                        "one of the plan's " + std::to_string(jobs.size()) + " ids (sweep plan)",
                        "\"" + id + "\"");
        if (!seen.insert(id).second)
            throw Error(what, "job id", "each id once", "\"" + id + "\" twice");
        out.push_back(*it);
    }
    return out;
}

std::pair<int, int> parseShard(const std::string& s, const std::string& what)
{
    int i = -1, n = 0;
    char tail = 0;
    if (std::sscanf(s.c_str(), "%d/%d%c", &i, &n, &tail) != 2 || n < 1 || i < 0 || i >= n)
        throw Error(what, "shard", "I/N with 0 <= I < N", "\"" + s + "\"");
    return {i, n};
}

SweepJudgement judgeModel(const SweepSpec& spec, const std::string& model, int64_t trainingLength,
                          const std::string& device, int threads, const std::atomic<bool>* cancel)
{
    if (trainingLength <= 0)
        throw Error(model, "training length", "a positive T_train (the model card's or --train-length)",
                    std::to_string(trainingLength));
    SweepJudgement j;
    for (const auto& text : spec.heldOut) {
        LengthEvalOptions e;
        e.model = model;
        e.textFile = text.path;
        e.length = spec.evalMultiple * trainingLength; // a job's evalLength (planSweep)
        e.samples = spec.evalSamples;
        e.trainingLength = trainingLength;
        // The paired reference over the ratio criteria's range, whichever criterion the spec names: the
        // report can then judge either way without rerunning.
        ForgetCriterion ratio = spec.criterion;
        ratio.kind = "ratio";
        std::tie(e.pairedBegin, e.pairedEnd) = criterionRange(ratio, trainingLength, e.length);
        RunOptions run;
        run.device = device;
        run.chunkSize = spec.evalChunk;
        run.threads = threads;
        j.evals.push_back(evaluateLengths(e, run, {}, cancel));
        j.domains.push_back(statsFor(j.evals.back(), spec.criterion));
    }
    j.verdict = judgeForgetting(spec.criterion, j.domains);
    return j;
}

namespace {

// The evaluations as job.json's "evals" holds them, one per held-out text.
nlohmann::ordered_json evalsJson(const SweepSpec& spec, const SweepJudgement& j)
{
    nlohmann::ordered_json evals = nlohmann::ordered_json::array();
    for (size_t k = 0; k < j.evals.size(); ++k)
        evals.push_back(evalToJson(j.evals[k], spec.heldOut[k].name, spec.heldOut[k].path));
    return evals;
}

} // namespace

std::string judgementJson(const SweepSpec& spec, const SweepJudgement& j)
{
    nlohmann::ordered_json out;
    out["forgets"] = j.verdict.forgets;
    out["score"] = j.verdict.score;
    out["norm_growth"] = j.verdict.normGrowth;
    out["reason"] = j.verdict.reason;
    out["evals"] = evalsJson(spec, j);
    return out.dump(1);
}

std::vector<std::string> unfinishedJobs(const SweepSpec& spec, const std::vector<SweepJob>& order,
                                        const std::vector<std::string>& earlier, int* coarseWithWeights)
{
    const std::string folder = sweepFolder(spec);
    std::map<std::string, const SweepRunResult*> byId;
    const SweepReport r = reportSweep(spec, false, earlier);
    for (const SweepRunResult& run : r.runs)
        byId[run.job.id] = &run;
    std::vector<std::string> ids;
    int rejudgeable = 0;
    for (const SweepJob& job : order) {
        const auto it = byId.find(job.id);
        const SweepRunResult* run = it == byId.end() ? nullptr : it->second;
        if (!run || !run->finished) {
            ids.push_back(job.id);
        } else if (run->approximate) {
            if (run->source.empty() && fs::exists(folder + "/jobs/" + job.id + "/model/model.safetensors"))
                ++rejudgeable;
            else
                ids.push_back(job.id);
        }
    }
    if (coarseWithWeights)
        *coarseWithWeights = rejudgeable;
    return ids;
}

int rejudgeSweep(const SweepSpec& spec, const std::vector<std::string>& only, const std::string& device,
                 int threads, const std::function<void(const std::string&)>& log,
                 const std::atomic<bool>* cancel)
{
    const std::string folder = sweepFolder(spec);
    const std::string onDevice = !device.empty() ? device : Runner::cudaAvailable() ? "cuda" : "cpu";
    int done = 0;
    for (const SweepJob& job : selectJobs(planSweep(spec), only, "--jobs")) {
        const std::string dir = folder + "/jobs/" + job.id, path = dir + "/job.json";
        if (!fs::exists(path))
            continue;
        const nlohmann::json stored = loadPythonJson(path);
        bool exact = true;
        double was = 0;
        try {
            was = judgeForgetting(spec.criterion, storedStats(stored.at("evals"), spec.criterion, &exact))
                      .normGrowth;
        } catch (const nlohmann::json::exception& e) {
            throw Error(path, "evals", "the evaluations of a job.json written by sweep run", e.what());
        }
        if (exact)
            continue;
        if (!fs::exists(dir + "/model/model.safetensors")) {
            log("keep " + job.id + ": stored coarsely, and its model weights are not in " + dir + "/model");
            continue;
        }
        if (cancel && cancel->load())
            throw Cancelled();
        const SweepJudgement judged =
            judgeModel(spec, dir + "/model", job.trainLength, onDevice, threads, cancel);
        // The training record (seconds, data, device) stays as it was, in its order.
        nlohmann::ordered_json result;
        try {
            std::ifstream in(path);
            result = nlohmann::ordered_json::parse(in);
        } catch (const nlohmann::json::exception& e) {
            throw Error(path, "job result", "a job.json written by sweep run", e.what());
        }
        result["evals"] = evalsJson(spec, judged);
        result["rejudged"] = onDevice;
        writeJsonAtomically(path, result);
        char line[200];
        std::snprintf(line, sizeof line, "rejudged %s: %s (score %.3f, growth %.2fx; read coarsely %.2fx)",
                      job.id.c_str(), judged.verdict.forgets ? "forgets" : "collapses", judged.verdict.score,
                      judged.verdict.normGrowth, was);
        log(line);
        ++done;
    }
    return done;
}

namespace {

// Finished jobs of an earlier session may have read a corpus since rebuilt: said before any GPU time
// is spent, since the report could not compare them with what this run trains. "" when none did.
std::string otherTextWarning(const SweepSpec& spec, const std::string& folder)
{
    const std::string now = TokenCorpus::fingerprint(spec.data);
    int other = 0;
    std::string example;
    for (const SweepJob& job : planSweep(spec)) {
        const std::string done = folder + "/jobs/" + job.id + "/job.json";
        if (!fs::exists(done))
            continue;
        const std::string was = loadPythonJson(done).value("data", std::string());
        if (!was.empty() && was != now && other++ == 0)
            example = job.id + " read " + was;
    }
    if (other == 0)
        return {};
    return "warning: " + std::to_string(other) + " finished job" + (other == 1 ? " was" : "s were") +
           " trained on another text than " + now + " (" + example + ")";
}

} // namespace

int runSweep(const SweepSpec& spec, const SweepRunOptions& o,
             const std::function<void(const std::string&)>& log, const std::atomic<bool>* cancel)
{
    const std::vector<SweepJob> selected = selectJobs(planSweep(spec), o.only, "--jobs");
    const std::vector<SweepJob> jobs = o.queue ? selected : shardJobs(selected, o.shard, o.shards);
    const std::string device = !o.device.empty() ? o.device : Runner::cudaAvailable() ? "cuda" : "cpu";
    const std::string folder = sweepFolder(spec);
    for (const auto& text : spec.heldOut)
        if (!fs::exists(text.path))
            throw Error(text.path, "held-out text \"" + text.name + "\" not found");
    const std::string otherText = otherTextWarning(spec, folder);
    if (!otherText.empty())
        log(otherText);
    int ran = 0;
    const auto begun = std::chrono::steady_clock::now();
    // In a queue, a job that runs out of device memory goes back to it, and its process waits until
    // another job finishes (or deferWaitSeconds pass) before it takes the queue from the top again: processes
    // sharing a GPU then take turns with the large jobs instead of failing, or of each grabbing the next
    // job in turn while the memory is still full. A job deferred kMaxDeferrals times fails.
    constexpr int kMaxDeferrals = 20;
    const auto deferWait = std::chrono::seconds(o.deferWaitSeconds);
    std::map<std::string, int> deferrals;
    auto finishedJobs = [&] {
        return std::count_if(jobs.begin(), jobs.end(), [&](const SweepJob& job) {
            return fs::exists(folder + "/jobs/" + job.id + "/job.json");
        });
    };
    for (bool again = true; again;) {
        again = false;
        for (const SweepJob& job : jobs) {
            const std::string dir = folder + "/jobs/" + job.id;
            if (fs::exists(dir + "/job.json")) {
                log("skip " + job.id + " (finished)");
                continue;
            }
            if (o.maxJobs > 0 && ran >= o.maxJobs) {
                again = false;
                break;
            }
            if (cancel && cancel->load())
                throw Cancelled();
            if (o.takeForSeconds >= 0 &&
                std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count() >=
                    o.takeForSeconds) {
                char line[120];
                std::snprintf(line, sizeof line, "stop: no new job after %g s (take-for)", o.takeForSeconds);
                log(line);
                return ran;
            }
            fs::create_directories(dir);
            std::unique_ptr<FileLock> claim;
            if (o.queue) {
                claim = std::make_unique<FileLock>(dir + "/claim.lock", FileLock::Mode::Try);
                if (!claim->locked()) {
                    log("skip " + job.id + " (claimed by another process)");
                    continue;
                }
                // The claim may have been released between the check above and the lock, by a process
                // that finished the job.
                if (fs::exists(dir + "/job.json")) {
                    log("skip " + job.id + " (finished)");
                    continue;
                }
            }
            const bool resuming = fs::exists(dir + "/model/trainer_state.json");
            log(std::string(resuming ? "resume " : "train ") + job.id + ": N_S " +
                std::to_string(job.stateSize) + ", T_train " + std::to_string(job.trainLength) + ", " +
                std::to_string(job.steps) + " steps of " + std::to_string(job.batch) + " on " + device);
            TrainOptions t;
            t.architecture = spec.architecture;
            t.shape = spec.shape;
            nlohmann::json overrides = nlohmann::json::parse(spec.overridesJson);
            overrides[axisKeys().at(spec.axis)] = job.axisValue;
            t.shapeOverrides = overrides.dump();
            t.data = spec.data;
            t.out = dir + "/model";
            t.dataDescription = spec.data;
            t.tokenizer = spec.tokenizer;
            t.trainLength = job.trainLength;
            t.batch = job.batch;
            t.steps = job.steps;
            t.warmup = static_cast<int64_t>(spec.warmupFraction * job.steps);
            t.schedule = spec.schedule;
            t.lr = spec.lr;
            t.weightDecay = spec.weightDecay;
            t.device = device;
            t.bf16 = spec.bf16 && device != "cpu";
            if (spec.init == "slow") {
                t.dtInitMin = 1e-5;
                t.dtInitMax = 1e-4;
                t.aInitMin = t.aInitMax = 1;
            }
            t.seed = job.seed;
            // Read before training, so that a text replaced while the job runs is not what it records.
            const std::string trainedOn = TokenCorpus::fingerprint(spec.data);
            t.logEvery = std::max<int64_t>(1, job.steps / 20);
            t.saveEvery = std::max<int64_t>(10, job.steps / 10);
            t.threads = o.threads;
            try {
                if (o.beforeTraining)
                    o.beforeTraining(job);
                std::ofstream trainLog(dir + "/train.log", std::ios::app);
                trainModel(t, [&](const TrainProgress& p) {
                    char line[200];
                    std::snprintf(line, sizeof line, "step %lld/%lld loss %.4f lr %.2e %.0f tokens/s\n",
                                  static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss,
                                  p.lr, p.tokensPerSecond);
                    trainLog << line << std::flush;
                    if (cancel && cancel->load())
                        throw Cancelled();
                });
            } catch (const std::exception& e) {
                Runner::releaseCachedDeviceMemory();
                const bool outOfMemory = std::string(e.what()).find("out of memory") != std::string::npos;
                if (!o.queue || !outOfMemory || ++deferrals[job.id] > kMaxDeferrals)
                    throw;
                log("defer " + job.id +
                    ": out of device memory; back to the queue until another job finishes");
                claim.reset();
                const auto before = finishedJobs();
                for (const auto since = std::chrono::steady_clock::now();
                     finishedJobs() == before && std::chrono::steady_clock::now() - since < deferWait;) {
                    if (cancel && cancel->load())
                        throw Cancelled();
                    std::this_thread::sleep_for(std::chrono::seconds(2));
                }
                again = true;
                break; // from the top: the first jobs of the list first
            }
            Runner::releaseCachedDeviceMemory();
            nlohmann::ordered_json result;
            result["job"] = jobJson(spec, job);
            // The trainer's count, which a job resumed from a checkpoint sums over the processes before
            // this one too, so that its minutes are what the run cost, not what its last part did.
            const double trainSeconds = trainedSeconds(t.out);
            const auto judging = std::chrono::steady_clock::now();
            const SweepJudgement judged = judgeModel(spec, t.out, job.trainLength, device, o.threads, cancel);
            const ForgetVerdict& v = judged.verdict;
            result["evals"] = evalsJson(spec, judged);
            result["device"] = device;
            result["data"] = trainedOn;
            result["train_seconds"] = trainSeconds;
            result["resumed"] = resuming;
            result["seconds"] =
                trainSeconds +
                std::chrono::duration<double>(std::chrono::steady_clock::now() - judging).count();
            writeJsonAtomically(dir + "/job.json", result);
            char line[200];
            std::snprintf(line, sizeof line, "done %s: %s (score %.3f, growth %.2fx) in %.0f s",
                          job.id.c_str(), v.forgets ? "forgets" : "collapses", v.score, v.normGrowth,
                          result["seconds"].get<double>());
            log(line);
            ++ran;
            Runner::releaseCachedDeviceMemory();
        }
    }
    return ran;
}

double studentT95(int df)
{
    static const double kTable[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447,
                                    2.365, 2.306,  2.262, 2.228, 2.201, 2.179, 2.160,
                                    2.145, 2.131,  2.120, 2.110, 2.101, 2.093, 2.086};
    if (df < 1)
        return std::numeric_limits<double>::infinity();
    if (df <= 20)
        return kTable[df];
    return df <= 30   ? 2.042 + (2.086 - 2.042) * (30 - df) / 10.0
           : df <= 60 ? 2.000 + 0.042 * (60 - df) / 30.0
                      : 1.96;
}

LineFit fitLine(const std::vector<double>& x, const std::vector<double>& y)
{
    if (x.size() != y.size())
        throw Error("fit", "points", std::to_string(x.size()) + " y values", std::to_string(y.size()));
    LineFit f;
    f.n = static_cast<int>(x.size());
    if (f.n < 2)
        throw Error("fit", "points", "at least 2", std::to_string(f.n));
    double mx = 0, my = 0;
    for (int i = 0; i < f.n; ++i) {
        mx += x[i] / f.n;
        my += y[i] / f.n;
    }
    double sxx = 0, sxy = 0, syy = 0;
    for (int i = 0; i < f.n; ++i) {
        sxx += (x[i] - mx) * (x[i] - mx);
        sxy += (x[i] - mx) * (y[i] - my);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (!(sxx > 0))
        throw Error("fit", "state sizes", "at least two distinct values", "one");
    f.slope = sxy / sxx;
    f.intercept = my - f.slope * mx;
    double sse = 0;
    for (int i = 0; i < f.n; ++i) {
        f.residuals.push_back(y[i] - (f.slope * x[i] + f.intercept));
        sse += f.residuals.back() * f.residuals.back();
    }
    f.r2 = syy > 0 ? 1 - sse / syy : 1;
    const double halfWidth = f.n > 2 ? studentT95(f.n - 2) * std::sqrt(sse / (f.n - 2) / sxx)
                                     : std::numeric_limits<double>::infinity();
    f.slopeLow = f.slope - halfWidth;
    f.slopeHigh = f.slope + halfWidth;
    return f;
}

ForgetThreshold forgetThreshold(const std::vector<int64_t>& T, const std::vector<ForgetVerdict>& v,
                                double threshold, double maxNormGrowth)
{
    ForgetThreshold f;
    int lo = -1, hi = -1; // indices of the largest collapsing and the smallest forgetting length
    for (size_t i = 0; i < T.size(); ++i) {
        if (!v[i].forgets)
            lo = static_cast<int>(i);
        else if (hi < 0)
            hi = static_cast<int>(i);
    }
    f.collapsesAt = lo >= 0 ? T[lo] : 0;
    f.forgetsFrom = hi >= 0 ? T[hi] : 0;
    f.monotone = lo < 0 || hi < 0 || lo < hi;
    f.inside = lo >= 0 && hi >= 0;
    // An upside-down bracket is no threshold: nothing to interpolate, so summary.json holds none either.
    if (!f.inside || !f.monotone)
        return f;
    // Where, between the two grid points, each failing part of the criterion crosses its limit: the
    // run forgets from the later crossing. A part that does not cross between them (a run that fails
    // by it but improves the wrong way) leaves the bracket's middle.
    const double la = std::log(static_cast<double>(T[lo])), lb = std::log(static_cast<double>(T[hi]));
    const ForgetVerdict &a = v[lo], &b = v[hi];
    double wLoss = -1, wNorm = -1;
    bool stuck = false;
    if (!(std::isfinite(a.score) && a.score <= threshold)) {
        if (std::isfinite(a.score) && std::isfinite(b.score) && b.score <= threshold && a.score > b.score)
            wLoss = (a.score - threshold) / (a.score - b.score);
        else
            stuck = true;
    }
    if (maxNormGrowth > 0 && a.normGrowth > maxNormGrowth) {
        if (b.normGrowth > 0 && b.normGrowth <= maxNormGrowth)
            wNorm = std::log(a.normGrowth / maxNormGrowth) / std::log(a.normGrowth / b.normGrowth);
        else
            stuck = true;
    }
    double w = 0.5;
    if (stuck || (wLoss < 0 && wNorm < 0)) {
        f.interpolatedBy = "middle";
    } else {
        w = std::max(wLoss, wNorm);
        f.interpolatedBy = wNorm > wLoss ? "norm" : "loss";
    }
    f.interpolated = std::exp(la + w * (lb - la));
    return f;
}

namespace {

// The finished runs of an earlier report's summary.json, by id, after checking that they can be judged
// again by this spec's criterion.
std::map<std::string, nlohmann::json> earlierRuns(const SweepSpec& spec, const std::string& path)
{
    auto text = [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", v);
        return std::string(buf);
    };
    const nlohmann::json j = loadPythonJson(path);
    std::map<std::string, nlohmann::json> runs;
    try {
        if (!j.is_object() || !j.contains("runs") || !j.at("runs").is_array())
            throw Error(path, "runs", "a sweep summary (sweep report's summary.json)",
                        j.is_object() ? "no list of runs" : j.type_name());
        const std::string name = j.at("name").get<std::string>();
        if (name != spec.name)
            throw Error(path, "name", "a report of sweep " + spec.name, name);
        // The statistics the summary kept were taken over the criterion's range, and a "paper" verdict
        // needs the bucket NLLs, which it did not keep.
        if (spec.criterion.kind == "paper")
            throw Error(path, "criterion.kind", "a loss-ratio criterion in " + spec.file,
                        "paper (a summary keeps no bucket NLLs to judge it by)");
        const nlohmann::json& c = j.at("criterion");
        for (const auto& [field, value] :
             {std::pair<const char*, double>{"from", spec.criterion.fromMultiple},
              std::pair<const char*, double>{"to", spec.criterion.toMultiple}})
            if (c.at(field).get<double>() != value)
                throw Error(path, std::string("criterion.") + field, text(value) + ", as in " + spec.file,
                            text(c.at(field).get<double>()));
        for (const auto& run : j.at("runs"))
            if (run.value("finished", false))
                runs[run.at("id").get<std::string>()] = run;
    } catch (const nlohmann::json::exception& e) {
        throw Error(path, "summary", "a summary.json written by sweep report", e.what());
    }
    return runs;
}

// One run of an earlier summary as the report's own, after checking it against the plan.
SweepRunResult runFromSummary(const SweepSpec& spec, const SweepJob& job, const nlohmann::json& x,
                              const std::string& path)
{
    SweepRunResult run;
    run.job = job;
    const std::string where = "runs[" + job.id + "].";
    try {
        for (const auto& [field, expected] : {std::pair<const char*, int64_t>{"state_size", job.stateSize},
                                              {"train_length", job.trainLength},
                                              {"seed", static_cast<int64_t>(job.seed)},
                                              {"tokens", job.tokens},
                                              {"steps", job.steps},
                                              {"batch", job.batch}})
            if (x.at(field).get<int64_t>() != expected)
                throw Error(path, where + field, std::to_string(expected) + ", as " + spec.file + " plans it",
                            std::to_string(x.at(field).get<int64_t>()));
        const nlohmann::json& domains = x.at("domains");
        if (domains.size() != spec.heldOut.size())
            throw Error(path, where + "domains", std::to_string(spec.heldOut.size()) + " held-out texts",
                        std::to_string(domains.size()));
        // JSON has no NaN or infinity: the summary wrote them as null, read back as unknown.
        auto number = [](const nlohmann::json& v, double unknown) {
            return v.is_number() ? v.get<double>() : unknown;
        };
        for (size_t d = 0; d < domains.size(); ++d) {
            const nlohmann::json& e = domains[d];
            if (e.at("domain").get<std::string>() != spec.heldOut[d].name)
                throw Error(path, where + "domains[" + std::to_string(d) + "]", spec.heldOut[d].name,
                            e.at("domain").get<std::string>());
            LengthStats s;
            s.ratio = number(e.at("ratio"), std::nan(""));
            s.ratioMin = number(e.at("ratio_min"), std::nan(""));
            s.ratioMax = number(e.at("ratio_max"), std::nan(""));
            s.referenceNll = number(e.at("reference_nll"), std::nan(""));
            s.rangeBegin = e.at("range").at(0).get<int64_t>();
            s.rangeEnd = e.at("range").at(1).get<int64_t>();
            s.rangeNll = number(e.at("range_nll"), std::nan(""));
            s.normGrowth = number(e.at("norm_growth"), std::nan(""));
            s.growthLayer = e.at("growth_layer").get<int64_t>();
            s.growthHead = e.at("growth_head").get<int64_t>();
            // Statistics that summaries gained later (the half-lives on 2026-12-04): unknown where an
            // older summary lacks them; no verdict reads them.
            s.growthNormShare = number(e.value("growth_norm_share", nlohmann::json()), -1);
            s.retainedShare = number(e.value("retained_share", nlohmann::json()), -1);
            nlohmann::json h = e.value("half_life", nlohmann::json());
            if (!h.is_object())
                h = nlohmann::json::object();
            s.halfLifeMedian = number(h.value("median", nlohmann::json()), -1);
            s.halfLifeP90 = number(h.value("p90", nlohmann::json()), -1);
            s.halfLifeMax = number(h.value("max", nlohmann::json()), -1);
            s.pairedRatio = number(e.at("paired_ratio"), -1);
            run.domains.push_back(s);
        }
        run.seconds = x.at("seconds").get<double>();
        run.data = x.value("data", std::string());
    } catch (const nlohmann::json::exception& e) {
        throw Error(path, where.substr(0, where.size() - 1), "a finished run of a summary.json", e.what());
    }
    run.verdict = judgeForgetting(spec.criterion, run.domains);
    run.finished = true;
    run.source = path;
    // Summaries without the key were written while every job.json kept grainFor's buckets.
    run.approximate = x.value("approximate", !storedExactly(job.trainLength, grainFor(job.trainLength)));
    return run;
}

} // namespace

SweepReport reportSweep(const SweepSpec& spec, bool provisional, const std::vector<std::string>& earlier)
{
    SweepReport r;
    r.spec = spec;
    r.provisional = provisional;
    const std::string folder = sweepFolder(spec);
    std::vector<std::pair<std::string, std::map<std::string, nlohmann::json>>> earlierSummaries;
    for (const std::string& path : earlier)
        earlierSummaries.emplace_back(path, earlierRuns(spec, path));
    for (const SweepJob& job : planSweep(spec)) {
        SweepRunResult run;
        run.job = job;
        const std::string path = folder + "/jobs/" + job.id + "/job.json";
        if (!fs::exists(path)) {
            for (const auto& [summary, runs] : earlierSummaries) {
                const auto it = runs.find(job.id);
                if (it == runs.end())
                    continue;
                run = runFromSummary(spec, job, it->second, summary);
                break;
            }
        } else {
            const nlohmann::json j = loadPythonJson(path);
            try {
                bool exact = true;
                run.domains = storedStats(j.at("evals"), spec.criterion, &exact);
                run.approximate = !exact;
                run.seconds = j.at("seconds").get<double>();
                run.data = j.value("data", std::string());
            } catch (const nlohmann::json::exception& e) {
                throw Error(path, "job result", "a job.json written by sweep run", e.what());
            }
            run.verdict = judgeForgetting(spec.criterion, run.domains);
            run.finished = true;
        }
        if (run.finished) {
            ++r.finished;
            auto text = std::find_if(r.trainingTexts.begin(), r.trainingTexts.end(),
                                     [&](const auto& t) { return t.first == run.data; });
            if (text == r.trainingTexts.end())
                r.trainingTexts.emplace_back(run.data, 1);
            else
                ++text->second;
        }
        r.runs.push_back(run);
    }
    for (int64_t value : spec.axisValues) {
        StateSizeResult size;
        size.axisValue = value;
        double logSum = 0;
        int counted = 0;
        bool allInside = true;
        std::vector<int64_t> forgetIndex, lowerBounds;
        const std::vector<int64_t>& grid = spec.lengthsFor(value);
        auto indexOf = [&](int64_t T) { return std::find(grid.begin(), grid.end(), T) - grid.begin(); };
        for (uint64_t seed : spec.seeds) {
            std::vector<int64_t> lengths;
            std::vector<ForgetVerdict> verdicts;
            for (const auto& run : r.runs) {
                if (run.job.axisValue == value)
                    size.stateSize = run.job.stateSize; // from the plan: known before any job finishes
                if (run.job.axisValue == value && run.job.seed == seed && run.finished) {
                    lengths.push_back(run.job.trainLength);
                    verdicts.push_back(run.verdict);
                }
            }
            ForgetThreshold f =
                forgetThreshold(lengths, verdicts, spec.criterion.threshold(), spec.criterion.maxNormGrowth);
            f.seed = seed;
            f.finished = static_cast<int>(lengths.size());
            f.planned = static_cast<int>(grid.size());
            if (lengths.size() != grid.size()) {
                // Unfinished: not a threshold yet, unless provisional and no unfinished length can move it.
                f.provisional = provisional && f.inside && f.monotone &&
                                indexOf(f.forgetsFrom) - indexOf(f.collapsesAt) == 1;
                if (!f.provisional)
                    f.inside = false, f.interpolated = 0;
            }
            const bool counts = f.inside && f.monotone;
            allInside = allInside && counts;
            if (counts) {
                logSum += std::log(f.interpolated);
                ++counted;
            }
            if (!provisional || counts)
                forgetIndex.push_back(indexOf(f.forgetsFrom)); // the grid's size when none forgot
            else if (f.collapsesAt > 0) // no threshold yet, but it cannot forget before its last collapse
                lowerBounds.push_back(indexOf(f.collapsesAt) + 1);
            size.seeds.push_back(f);
        }
        if (!forgetIndex.empty()) {
            int64_t highest = *std::max_element(forgetIndex.begin(), forgetIndex.end());
            for (int64_t b : lowerBounds)
                highest = std::max(highest, b);
            size.seedsAgree = highest - *std::min_element(forgetIndex.begin(), forgetIndex.end()) <= 1;
        }
        if ((allInside || provisional) && counted > 0)
            size.tForget = std::exp(logSum / counted);
        // One value of each finished run of this size and length: the mean over its texts (of logs
        // where geometric), then over the runs; NaN without one.
        auto cell = [&](int64_t T, double LengthStats::*field, bool geometric, int* runsOut) {
            double sum = 0;
            int runs = 0;
            for (const auto& run : r.runs) {
                if (!run.finished || run.job.axisValue != value || run.job.trainLength != T)
                    continue;
                double domainSum = 0;
                int domains = 0;
                for (const auto& d : run.domains) {
                    const double x = d.*field;
                    if (geometric ? x > 0 : std::isfinite(x))
                        domainSum += geometric ? std::log(x) : x, ++domains;
                }
                if (domains > 0)
                    sum += domainSum / domains, ++runs;
            }
            if (runsOut)
                *runsOut = runs;
            return runs == 0 ? std::nan("") : geometric ? std::exp(sum / runs) : sum / runs;
        };
        for (int64_t T : spec.trainLengths) {
            int runs = 0;
            size.referenceNll.push_back(cell(T, &LengthStats::referenceNll, false, &runs));
            size.referenceRuns.push_back(runs);
            size.halfLifeMedian.push_back(cell(T, &LengthStats::halfLifeMedian, true, nullptr));
            size.halfLifeP90.push_back(cell(T, &LengthStats::halfLifeP90, true, nullptr));
        }
        r.sizes.push_back(size);
    }
    std::vector<double> x, y;
    double last = 0;
    for (const auto& s : r.sizes)
        if (s.tForget > 0) {
            if (s.tForget < last)
                r.monotoneInStateSize = false;
            last = s.tForget;
            x.push_back(s.stateSize / 1e6);
            y.push_back(s.tForget / 1024.0);
        }
    if (x.size() >= 2) {
        try {
            r.fit = fitLine(x, y);
        } catch (const Error&) { // every size the same N_S: no line
        }
    }
    return r;
}

namespace {

// A table of the sizes (rows) by training length (columns), "-" where `cell` returns "".
std::string formatSizeTable(const SweepReport& r, const std::string& title,
                            const std::function<std::string(const StateSizeResult&, size_t)>& cell)
{
    std::ostringstream out;
    char buf[64];
    out << title << "\n";
    std::snprintf(buf, sizeof buf, "%-8s %10s", r.spec.axis.c_str(), "N_S");
    out << buf;
    for (int64_t T : r.spec.trainLengths) {
        std::snprintf(buf, sizeof buf, " %9s", ("T " + std::to_string(T)).c_str());
        out << buf;
    }
    out << "\n";
    for (const auto& s : r.sizes) {
        std::snprintf(buf, sizeof buf, "%-8lld %10lld", static_cast<long long>(s.axisValue),
                      static_cast<long long>(s.stateSize));
        out << buf;
        for (size_t i = 0; i < r.spec.trainLengths.size(); ++i) {
            const std::string c = cell(s, i);
            std::snprintf(buf, sizeof buf, " %9s", c.empty() ? "-" : c.c_str());
            out << buf;
        }
        out << "\n";
    }
    return out.str();
}

// What the sizes' runs make of their state: the loss within T_train (StateSizeResult::referenceNll)
// with the change from the smallest state to the largest, and how far back their heads reach.
std::string formatStateUse(const SweepReport& r)
{
    bool any = false;
    for (const auto& s : r.sizes)
        for (int runs : s.referenceRuns)
            any = any || runs > 0;
    if (!any)
        return {};
    char buf[64];
    auto value = [](const std::vector<double>& v, size_t i) { return i < v.size() ? v[i] : std::nan(""); };
    std::string out = formatSizeTable(
        r,
        "held-out NLL within T_train by state size: nats per token over [T/2, T) (first 64 tokens "
        "skipped), the mean of the texts, then of the finished seeds; each column reads other tokens, "
        "so compare within a column",
        [&](const StateSizeResult& s, size_t i) {
            const double x = value(s.referenceNll, i);
            if (!std::isfinite(x))
                return std::string();
            std::snprintf(buf, sizeof buf, "%.3f", x);
            return std::string(buf);
        });
    // The ends by N_S among the sizes with a run at that length: the rows follow the axis values.
    std::snprintf(buf, sizeof buf, "%-19s", "largest - smallest");
    out += buf;
    for (size_t i = 0; i < r.spec.trainLengths.size(); ++i) {
        const StateSizeResult *smallest = nullptr, *largest = nullptr;
        for (const auto& s : r.sizes) {
            if (!std::isfinite(value(s.referenceNll, i)))
                continue;
            if (!smallest || s.stateSize < smallest->stateSize)
                smallest = &s;
            if (!largest || s.stateSize > largest->stateSize)
                largest = &s;
        }
        if (smallest && largest && smallest->stateSize < largest->stateSize)
            std::snprintf(buf, sizeof buf, " %+9.3f", largest->referenceNll[i] - smallest->referenceNll[i]);
        else
            std::snprintf(buf, sizeof buf, " %9s", "-");
        out += buf;
    }
    out += "\n\n";
    bool halfLives = false;
    for (const auto& s : r.sizes)
        for (size_t i = 0; i < r.spec.trainLengths.size(); ++i)
            halfLives = halfLives || !std::isnan(value(s.halfLifeMedian, i));
    if (!halfLives)
        return out;
    const std::string title =
        "how far back the heads reach: half-lives in tokens (ln 2 over a head's mean log decay per token "
        "over the evaluation windows), the median head's / the 90th percentile's; geometric means of the "
        "texts, then of the finished seeds";
    out += formatSizeTable(r, title, [&](const StateSizeResult& s, size_t i) {
        const double median = value(s.halfLifeMedian, i), p90 = value(s.halfLifeP90, i);
        if (std::isnan(median) || std::isnan(p90))
            return std::string();
        std::snprintf(buf, sizeof buf, "%.0f/%.0f", median, p90);
        return std::string(buf);
    });
    return out + "\n";
}

} // namespace

std::string formatSweepReport(const SweepReport& r)
{
    std::ostringstream out;
    char buf[400];
    const ForgetCriterion& c = r.spec.criterion;
    if (c.kind == "paper")
        std::snprintf(
            buf, sizeof buf,
            "criterion: forgets when the last bucket's NLL < %.2f x the largest bucket inside T_train",
            c.paperFactor);
    else if (c.kind == "paired")
        std::snprintf(
            buf, sizeof buf,
            "criterion: forgets when NLL over [%g T, %g T) <= %.2f x the same tokens' NLL read with a "
            "context of T/2 to T",
            c.fromMultiple, c.toMultiple, c.threshold());
    else
        std::snprintf(buf, sizeof buf,
                      "criterion: forgets when NLL over [%g T, %g T) <= %.2f x NLL over [T/2, T) (first 64 "
                      "tokens skipped)",
                      c.fromMultiple, c.toMultiple, c.threshold());
    out << buf;
    if (c.maxNormGrowth > 0) {
        std::snprintf(buf, sizeof buf, ", and state-norm growth <= %.1fx", c.maxNormGrowth);
        out << buf;
    }
    out << ", on every held-out text\n";
    std::snprintf(buf, sizeof buf, "%d of %zu jobs finished\n", r.finished, r.runs.size());
    out << buf;
    // Runs taken from earlier reports, by file in the order given: what of the table was not read here.
    std::vector<std::pair<std::string, int>> sources;
    for (const auto& run : r.runs) {
        if (run.source.empty())
            continue;
        auto it = std::find_if(sources.begin(), sources.end(),
                               [&](const auto& p) { return p.first == run.source; });
        if (it == sources.end())
            sources.emplace_back(run.source, 1);
        else
            ++it->second;
    }
    for (const auto& [source, n] : sources)
        out << "  " << n << " of them from " << source
            << " (an earlier report; their job folders are not here)\n";
    auto textName = [](const std::string& t) { return t.empty() ? std::string("not recorded") : t; };
    if (r.trainingTexts.size() == 1) {
        out << "trained on: " << textName(r.trainingTexts[0].first) << "\n";
    } else if (r.trainingTexts.size() > 1) {
        // Jobs of one sweep can span sessions, each of which may have rebuilt the corpus: a threshold
        // between two jobs trained on different texts would measure the texts as much as the state.
        out << "warning: the finished jobs were trained on " << r.trainingTexts.size()
            << " different texts; thresholds across them are not comparable\n";
        for (const auto& [text, jobs] : r.trainingTexts)
            out << "  " << jobs << (jobs == 1 ? " job: " : " jobs: ") << textName(text) << "\n";
    }
    const auto approximate = std::count_if(
        r.runs.begin(), r.runs.end(), [](const SweepRunResult& x) { return x.finished && x.approximate; });
    if (approximate > 0)
        out << "warning: " << approximate << " finished job" << (approximate == 1 ? " was" : "s were")
            << " stored before 2026-12-06 in buckets coarser than the reference window [T/2, T) (T_train 8 "
               "and 16, marked ~): their growth and loss ratio are read against a wider window and only "
               "approximate the run's own, which the \"done\" lines of the sweep's log give; a run again "
               "stores them exactly\n";
    if (r.provisional)
        out << "provisional: a seed's threshold counts once the two lengths around it are finished, and a "
               "size's T_forget is the mean of the seeds that have one\n";
    out << "\n";
    std::snprintf(buf, sizeof buf, "%-28s %10s %8s %5s %9s %8s %8s %9s %9s %8s  %s\n", "job", "N_S",
                  "T_train", "seed", "tokens", "score", "growth", "retained", "slowest", "minutes",
                  "verdict");
    out << buf;
    for (const auto& run : r.runs) {
        if (!run.finished) {
            std::snprintf(
                buf, sizeof buf, "%-28s %10lld %8lld %5llu %9lld  (not finished)\n", run.job.id.c_str(),
                static_cast<long long>(run.job.stateSize), static_cast<long long>(run.job.trainLength),
                static_cast<unsigned long long>(run.job.seed), static_cast<long long>(run.job.tokens));
            out << buf;
            continue;
        }
        // The slowest head's half-life in units of T_train: a head that remembers for several training
        // lengths is one training never asked to forget.
        double retained = -1, slowest = -1;
        for (const auto& d : run.domains) {
            retained = std::max(retained, d.retainedShare);
            slowest = std::max(slowest, d.halfLifeMax);
        }
        char memory[16] = "-";
        if (slowest >= 0)
            std::snprintf(memory, sizeof memory, "%.1fT", slowest / run.job.trainLength);
        std::snprintf(buf, sizeof buf, "%-28s %10lld %8lld %5llu %9lld %8.3f %7.2fx %8.0f%% %9s %8.2f  %s\n",
                      run.job.id.c_str(), static_cast<long long>(run.job.stateSize),
                      static_cast<long long>(run.job.trainLength),
                      static_cast<unsigned long long>(run.job.seed), static_cast<long long>(run.job.tokens),
                      run.verdict.score, run.verdict.normGrowth, 100 * retained, memory, run.seconds / 60,
                      ((run.approximate ? "~" : "") +
                       (run.verdict.forgets ? std::string("forgets") : "collapses: " + run.verdict.reason))
                          .c_str());
        out << buf;
    }
    out << "\n";
    std::snprintf(buf, sizeof buf, "%-8s %10s %5s %26s  %s\n", r.spec.axis.c_str(), "N_S", "seed",
                  "T_forget bracket", "interpolated (by)");
    out << buf;
    for (const auto& s : r.sizes) {
        for (const auto& f : s.seeds) {
            const std::string lo = f.collapsesAt ? std::to_string(f.collapsesAt) : "-";
            const std::string hi = f.forgetsFrom ? std::to_string(f.forgetsFrom) : "-";
            // A bracket upside down (a collapse above a forgetting length) is no threshold, whatever
            // middle it has: the figure and the fit leave it out, and so does this line.
            const std::string at =
                !f.monotone ? std::string("not monotone in T_train, no threshold")
                : f.inside  ? std::to_string(std::llround(f.interpolated)) + " (" + f.interpolatedBy + ")" +
                                 (f.provisional ? ", provisional" : "")
                : f.finished < f.planned ? "unfinished, " + std::to_string(f.finished) + " of " +
                                               std::to_string(f.planned) + " lengths"
                                         : std::string("outside grid");
            // A bracket that ends on a run stored coarsely is only as exact as that run.
            const bool approximate = std::any_of(r.runs.begin(), r.runs.end(), [&](const SweepRunResult& x) {
                return x.finished && x.approximate && x.job.axisValue == s.axisValue &&
                       x.job.seed == f.seed &&
                       (x.job.trainLength == f.collapsesAt || x.job.trainLength == f.forgetsFrom);
            });
            std::snprintf(buf, sizeof buf, "%-8lld %10lld %5llu %26s  %s%s\n",
                          static_cast<long long>(s.axisValue), static_cast<long long>(s.stateSize),
                          static_cast<unsigned long long>(f.seed), ("[" + lo + ", " + hi + "]").c_str(),
                          at.c_str(), approximate ? " ~" : "");
            out << buf;
        }
        if (s.tForget > 0) {
            std::snprintf(buf, sizeof buf, "%-8lld %10lld  T_forget %.0f tokens%s\n",
                          static_cast<long long>(s.axisValue), static_cast<long long>(s.stateSize), s.tForget,
                          s.seedsAgree ? "" : " (the seeds disagree by more than one grid step)");
            out << buf;
        }
    }
    out << "\n" << formatStateUse(r);
    if (r.fit.n >= 2) {
        char interval[96] = "none (a line through two points has no error)";
        if (r.fit.hasInterval())
            std::snprintf(interval, sizeof interval, "[%.4f, %.4f]%s", r.fit.slopeLow, r.fit.slopeHigh,
                          r.fit.slopeLow > 0 || r.fit.slopeHigh < 0 ? "" : " (includes 0)");
        std::snprintf(
            buf, sizeof buf,
            "fit over %d state sizes: T_forget[K tokens] = %.4f * N_S[M] %+.4f   R^2 = %.4f   slope "
            "95%% CI%s%s\n",
            r.fit.n, r.fit.slope, r.fit.intercept, r.fit.r2, r.fit.hasInterval() ? " " : ": ", interval);
        out << buf;
        int i = 0;
        for (const auto& s : r.sizes)
            if (s.tForget > 0) {
                std::snprintf(buf, sizeof buf, "  N_S %.4f M: T_forget %.4f K, residual %+.4f K\n",
                              s.stateSize / 1e6, s.tForget / 1024.0, r.fit.residuals[i++]);
                out << buf;
            }
    } else {
        out << "no fit: fewer than two state sizes have T_forget inside the grid\n";
    }
    if (!r.monotoneInStateSize)
        out << "T_forget is not monotone in N_S\n";
    out << "paper: T_forget[K tokens] = 5.172 * N_S[M] - 4.469 (Stuffed Mamba, Fig. 11)\n";
    return out.str();
}

std::vector<std::string> writeSweepReport(const SweepReport& r, const std::string& folder)
{
    fs::create_directories(folder);
    nlohmann::ordered_json j;
    j["name"] = r.spec.name;
    j["spec"] = r.spec.file;
    j["axis"] = r.spec.axis;
    j["init"] = r.spec.init;
    const ForgetCriterion& c = r.spec.criterion;
    j["criterion"] = {{"kind", c.kind},
                      {"from", c.fromMultiple},
                      {"to", c.toMultiple},
                      {"tolerance", c.tolerance},
                      {"factor", c.paperFactor},
                      {"max_norm_growth", c.maxNormGrowth},
                      {"threshold", c.threshold()}};
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (const auto& run : r.runs) {
        nlohmann::ordered_json x{{"id", run.job.id},
                                 {"axis_value", run.job.axisValue},
                                 {"state_size", run.job.stateSize},
                                 {"train_length", run.job.trainLength},
                                 {"seed", run.job.seed},
                                 {"tokens", run.job.tokens},
                                 {"steps", run.job.steps},
                                 {"batch", run.job.batch},
                                 {"finished", run.finished}};
        if (run.finished) {
            x["forgets"] = run.verdict.forgets;
            x["score"] = run.verdict.score;
            x["norm_growth"] = run.verdict.normGrowth;
            x["reason"] = run.verdict.reason;
            x["approximate"] = run.approximate;
            x["seconds"] = run.seconds;
            x["data"] = run.data;
            nlohmann::json domains = nlohmann::json::array();
            for (size_t d = 0; d < run.domains.size(); ++d) {
                const LengthStats& s = run.domains[d];
                domains.push_back(
                    {{"domain", d < r.spec.heldOut.size() ? r.spec.heldOut[d].name : ""},
                     {"ratio", s.ratio},
                     {"ratio_min", s.ratioMin},
                     {"ratio_max", s.ratioMax},
                     {"reference_nll", s.referenceNll},
                     {"range", {s.rangeBegin, s.rangeEnd}},
                     {"range_nll", s.rangeNll},
                     {"norm_growth", s.normGrowth},
                     {"growth_layer", s.growthLayer},
                     {"growth_head", s.growthHead},
                     {"growth_norm_share", s.growthNormShare},
                     {"retained_share", s.retainedShare},
                     {"half_life",
                      {{"median", s.halfLifeMedian}, {"p90", s.halfLifeP90}, {"max", s.halfLifeMax}}},
                     {"paired_ratio", s.pairedRatio}});
            }
            x["domains"] = domains;
            if (run.source.empty())
                x["eval"] = "jobs/" + run.job.id + "/job.json";
            else
                x["source"] = run.source; // its evaluation stayed where that report was made
        }
        runs.push_back(x);
    }
    j["runs"] = runs;
    nlohmann::json sizes = nlohmann::json::array();
    for (const auto& s : r.sizes) {
        nlohmann::json seeds = nlohmann::json::array();
        for (const auto& f : s.seeds)
            seeds.push_back({{"seed", f.seed},
                             {"collapses_at", f.collapsesAt},
                             {"forgets_from", f.forgetsFrom},
                             {"monotone", f.monotone},
                             {"inside", f.inside},
                             {"interpolated", f.interpolated},
                             {"interpolated_by", f.interpolatedBy},
                             {"provisional", f.provisional},
                             {"finished_lengths", f.finished},
                             {"planned_lengths", f.planned}});
        // NaN and infinity (a head that does not decay) are written as null, as JSON has neither.
        nlohmann::json byLength = nlohmann::json::array();
        for (size_t i = 0; i < s.referenceNll.size() && i < r.spec.trainLengths.size(); ++i)
            if (s.referenceRuns[i] > 0)
                byLength.push_back({{"train_length", r.spec.trainLengths[i]},
                                    {"runs", s.referenceRuns[i]},
                                    {"reference_nll", s.referenceNll[i]},
                                    {"half_life_median", s.halfLifeMedian[i]},
                                    {"half_life_p90", s.halfLifeP90[i]}});
        sizes.push_back({{"axis_value", s.axisValue},
                         {"state_size", s.stateSize},
                         {"t_forget", s.tForget},
                         {"seeds_agree", s.seedsAgree},
                         {"seeds", seeds},
                         {"by_train_length", byLength}});
    }
    j["sizes"] = sizes;
    j["monotone_in_state_size"] = r.monotoneInStateSize;
    j["provisional"] = r.provisional;
    nlohmann::ordered_json texts = nlohmann::ordered_json::array();
    for (const auto& [text, jobs] : r.trainingTexts)
        texts.push_back({{"data", text}, {"jobs", jobs}});
    j["training_texts"] = texts;
    if (r.fit.n >= 2)
        j["fit"] = {{"n", r.fit.n},
                    {"slope", r.fit.slope},
                    {"intercept", r.fit.intercept},
                    {"r2", r.fit.r2},
                    // Two sizes leave no degree of freedom: no interval, null rather than a number a
                    // reader could take for one.
                    {"slope_ci95", r.fit.hasInterval() ? nlohmann::json{r.fit.slopeLow, r.fit.slopeHigh}
                                                       : nlohmann::json{nullptr, nullptr}},
                    {"residuals", r.fit.residuals},
                    {"units", "T_forget in K = 1024 tokens, N_S in M elements"}};
    j["paper_fit"] = {{"slope", 5.172}, {"intercept", -4.469}};
    const std::string jsonPath = folder + "/summary.json";
    writeJsonAtomically(jsonPath, j);

    // The same table as columns in HDF5, for h5py and the window.
    const std::string h5Path = folder + "/summary.h5";
    h5::quiet();
    const hid_t file = H5Fcreate(h5Path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        throw Error(h5Path, "cannot create the file: " + h5::errorDetail());
    auto column = [&](const char* name, const std::vector<double>& v) {
        const hsize_t n = v.size();
        const hid_t space = H5Screate_simple(1, &n, nullptr);
        const hid_t set =
            H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        const bool ok = set >= 0 && (v.empty() || H5Dwrite(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                                                           H5P_DEFAULT, v.data()) >= 0);
        if (set >= 0)
            H5Dclose(set);
        H5Sclose(space);
        if (!ok)
            throw Error(h5Path, name, "a written column", h5::errorDetail());
    };
    std::vector<double> ns, tt, seed, forgets, score, growth, finished;
    for (const auto& run : r.runs) {
        ns.push_back(static_cast<double>(run.job.stateSize));
        tt.push_back(static_cast<double>(run.job.trainLength));
        seed.push_back(static_cast<double>(run.job.seed));
        finished.push_back(run.finished);
        forgets.push_back(run.finished ? run.verdict.forgets : std::nan(""));
        score.push_back(run.finished ? run.verdict.score : std::nan(""));
        growth.push_back(run.finished ? run.verdict.normGrowth : std::nan(""));
    }
    try {
        column("state_size", ns);
        column("train_length", tt);
        column("seed", seed);
        column("finished", finished);
        column("forgets", forgets);
        column("score", score);
        column("norm_growth", growth);
        std::vector<double> sizeNs, tForget;
        for (const auto& s : r.sizes) {
            sizeNs.push_back(static_cast<double>(s.stateSize));
            tForget.push_back(s.tForget > 0 ? s.tForget : std::nan(""));
        }
        column("size_state_size", sizeNs);
        column("size_t_forget", tForget);
        std::string error;
        if (r.fit.n >= 2 && !(h5::writeDoubleAttribute(file, "fit_slope", r.fit.slope, &error) &&
                              h5::writeDoubleAttribute(file, "fit_intercept", r.fit.intercept, &error) &&
                              h5::writeDoubleAttribute(file, "fit_r2", r.fit.r2, &error)))
            throw Error(h5Path, "fit", "written attributes", error);
    } catch (...) {
        H5Fclose(file);
        throw;
    }
    H5Fclose(file);
    return {jsonPath, h5Path};
}

} // namespace statescope
