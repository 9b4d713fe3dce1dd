#pragma once

// Sweeps of trainings over state size × training length, and the analysis that turns them into the
// paper's law (Stuffed Mamba §5.3: T_forget[K tokens] = 5.172·N_S[M] − 4.469). Torch-free header.
//
// A sweep is a spec (docs/sweeps.md): one architecture and base shape, an axis that changes the state
// size, training lengths, seeds, a token budget, held-out texts and a criterion for "learned to
// forget". `planSweep` turns it into jobs, the same list every time; a job is a folder
// <out>/jobs/<id>/ holding its model, its training log and, written last, job.json with the
// evaluation. A job with job.json is never redone; one without it resumes its training.

#include "runtime/LengthEval.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace statescope {

// When a trained model "forgets" (the sweep's setting; docs/sweeps.md).
struct ForgetCriterion {
    // "ratio": the mean NLL over [from·T, to·T) is within `tolerance` of the reference window's
    // (referenceWindow()). "paired": the same range's NLL is within `tolerance` of those very tokens' NLL
    // read with a context of T/2 to T (LengthEvalOptions::pairedBegin), so that the text's own variation
    // cancels. "paper": the NLL of the evaluation's last bucket stays below
    // `paperFactor` × the largest bucket NLL inside the training length (stuffed-mamba.md §5.3).
    std::string kind = "ratio";
    double fromMultiple = 8, toMultiple = 16;
    double tolerance = 0.10;
    double paperFactor = 2.0;
    // Also required on every held-out domain: the largest head's state-norm growth from the reference
    // window to the range's end at most this (<= 0: not required).
    double maxNormGrowth = 5;

    double threshold() const { return kind == "paper" ? paperFactor : 1 + tolerance; }
    // The score of one domain: its ratio, paired ratio or end / max-within; +inf when unmeasured.
    double score(const LengthStats& s) const;
};

// What a criterion makes of one run's evaluations (one LengthStats per held-out domain).
struct ForgetVerdict {
    bool forgets = false;
    double score = 0; // the worst domain's ratio (or end / max-within for "paper"); compared with threshold()
    double normGrowth = 0; // the worst domain's
    std::string reason;    // why it does not forget ("" when it does)
};
ForgetVerdict judgeForgetting(const ForgetCriterion& c, const std::vector<LengthStats>& domains);

// The range of positions a criterion compares, for training length T and an evaluation of `length`.
std::pair<int64_t, int64_t> criterionRange(const ForgetCriterion& c, int64_t trainingLength, int64_t length);

struct HeldOutText {
    std::string name; // "kjv", "manuals"
    std::string path; // relative paths are relative to the spec's folder
};

struct SweepSpec {
    std::string file; // where the spec was read from
    std::string name;
    std::string out; // the sweep's folder ("" in the file: <spec folder>/<name>)
    std::string architecture = "mamba2";
    std::string shape = "tiny";
    std::string overridesJson = "{}"; // config keys (transformers dialect) every run shares
    std::string axis = "d_state";     // d_state, n_layer, d_model or headdim
    std::vector<int64_t> axisValues;
    // Every T_train of the sweep, ascending: the report's columns. A size runs lengthsFor(its value).
    std::vector<int64_t> trainLengths;
    // "train_lengths_by_value": the sizes whose grid differs from train_lengths, such as a large state
    // whose threshold lies past the lengths the smaller ones need.
    std::map<int64_t, std::vector<int64_t>> trainLengthsByValue;
    std::vector<uint64_t> seeds{0, 1};
    // "tokens": every run sees tokensPerRun tokens in steps of tokensPerStep (batch = tokensPerStep / T,
    // at least 1). "steps": every run takes `steps` steps of `batch` sequences, so tokens grow with T.
    std::string budget = "tokens";
    int64_t tokensPerRun = 0;
    int64_t tokensPerStep = 16384;
    int64_t steps = 0, batch = 0;
    std::string init = "default"; // "default" (mamba_ssm's: Δ in [1e-3, 0.1], A in [1, 16]) or "slow"
    double lr = 2e-3, weightDecay = 0.1, warmupFraction = 0.05;
    std::string schedule = "wsd";
    bool bf16 = true;      // on CUDA
    std::string data;      // training corpus
    std::string tokenizer; // tokenizer.json of every run's model; empty = bytes
    std::vector<HeldOutText> heldOut;
    int64_t evalMultiple = 32; // evaluation windows of evalMultiple · T tokens
    int evalSamples = 4;
    int64_t evalChunk = 8192;
    ForgetCriterion criterion;

    // The T_train values a size of this axis value runs, ascending.
    const std::vector<int64_t>& lengthsFor(int64_t axisValue) const
    {
        const auto it = trainLengthsByValue.find(axisValue);
        return it == trainLengthsByValue.end() ? trainLengths : it->second;
    }
};

// Reads and checks a spec (throws Error naming the file and the field).
SweepSpec readSweepSpec(const std::string& path);
// Folder of the sweep's jobs.
std::string sweepFolder(const SweepSpec& spec);

struct SweepJob {
    int64_t index = 0;
    std::string id; // "d_state-64_T-1024_seed-0"
    int64_t axisValue = 0;
    int64_t stateSize = 0; // N_S, from the registry's description of the run's config
    int64_t trainLength = 0;
    uint64_t seed = 0;
    int64_t batch = 0, steps = 0, tokens = 0;
    int64_t evalLength = 0;
};

// The jobs in a fixed order: axis value, then training length, then seed.
std::vector<SweepJob> planSweep(const SweepSpec& spec);
// Writes the job list as JSON to `path` (default <out>/plan.json); the same fields as each job.json's
// "job" object. Returns the path written.
std::string writeSweepPlan(const SweepSpec& spec, const std::vector<SweepJob>& jobs, std::string path = {});
// Shard `index` of `count` (0-based): every count-th job from index, so that shards mix short and long runs.
std::vector<SweepJob> shardJobs(const std::vector<SweepJob>& jobs, int index, int count);
// The jobs named by `ids`, in that order (a re-run of a few, the likeliest thresholds first); all of them
// when `ids` is empty. Throws Error naming `what` for an id the plan lacks or one named twice.
std::vector<SweepJob> selectJobs(const std::vector<SweepJob>& jobs, const std::vector<std::string>& ids,
                                 const std::string& what);
// Parses "I/N" (0 <= I < N); throws Error naming what for anything else.
std::pair<int, int> parseShard(const std::string& s, const std::string& what);

struct SweepRunOptions {
    int shard = 0, shards = 1;
    std::string device; // "" = cuda if available, else cpu
    int threads = 0;
    int maxJobs = 0;               // > 0: stop after this many jobs were run (not skipped)
    std::vector<std::string> only; // job ids to run, in this order (selectJobs); empty: the whole plan
    // Instead of a fixed share, take the next job no other process has claimed (an fcntl lock on
    // <job>/claim.lock, released when the process ends however it ends), so that processes sharing a
    // file system keep busy until the queue is empty, whatever each job costs.
    bool queue = false;
    int deferWaitSeconds = 180; // queue: how long a job out of device memory waits for another to finish
    // >= 0: take no job (nor resume one) once this many seconds have passed since runSweep began. A call
    // with a time limit then ends with its running jobs finished instead of with jobs just started, which
    // would only slow the others down and be lost with the machine.
    double takeForSeconds = -1;
    std::function<void(const SweepJob&)> beforeTraining; // tests: throws as a training would
};

// Runs a shard's (or, with queue, the queue's) unfinished jobs: trains (resuming), evaluates on every
// held-out text, writes job.json last. log gets one line per event. Returns the number of jobs run. Throws
// Error for a spec or job that cannot run; Cancelled between jobs' chunks when *cancel turns true.
int runSweep(const SweepSpec& spec, const SweepRunOptions& options,
             const std::function<void(const std::string&)>& log, const std::atomic<bool>* cancel = nullptr);

// One model folder evaluated the way `runSweep` evaluates a finished job: on every held-out text of
// the spec, evalSamples windows of evalMultiple · trainingLength tokens, the paired reference over the
// criterion's range, then the spec's verdict. So any model (a snapshot of a long run, a built-in
// model) can be judged by a sweep's criterion. Throws Error naming the model for T <= 0.
struct SweepJudgement {
    std::vector<LengthEval> evals;    // one per spec.heldOut, in order
    std::vector<LengthStats> domains; // their statistics under spec.criterion
    ForgetVerdict verdict;
};
SweepJudgement judgeModel(const SweepSpec& spec, const std::string& model, int64_t trainingLength,
                          const std::string& device, int threads, const std::atomic<bool>* cancel = nullptr);
// The verdict and the evaluations as job.json holds them ("evals").
std::string judgementJson(const SweepSpec& spec, const SweepJudgement& judgement);
// The ids of `order` that a machine without this one's results should still run, in that order: jobs
// with no job.json here nor a finished run in the `earlier` summaries, and jobs stored coarsely (see
// SweepRunResult::approximate) whose weights are not here to evaluate again (`coarseWithWeights`
// counts those that are: rejudgeSweep's).
std::vector<std::string> unfinishedJobs(const SweepSpec& spec, const std::vector<SweepJob>& order,
                                        const std::vector<std::string>& earlier,
                                        int* coarseWithWeights = nullptr);
// Evaluates again the finished jobs (of `only`, or all) that job.json stored coarser than their
// reference window, from the model weights still in their folders, and rewrites the evaluations of
// their job.json (its training record stays): the report then judges them exactly. A job whose
// weights are not here (a GPU sweep's results come back without them) is named and left as it is.
// Returns how many were evaluated again.
int rejudgeSweep(const SweepSpec& spec, const std::vector<std::string>& only, const std::string& device,
                 int threads, const std::function<void(const std::string&)>& log,
                 const std::atomic<bool>* cancel = nullptr);

struct LineFit {
    int n = 0;
    double slope = 0, intercept = 0, r2 = 0;
    double slopeLow = 0, slopeHigh = 0; // 95 % confidence interval (Student's t, n − 2 degrees of freedom)
    std::vector<double> residuals;
    // Two points leave no degree of freedom: the bounds are infinite, and callers must say "none"
    // rather than print them.
    bool hasInterval() const { return std::isfinite(slopeLow) && std::isfinite(slopeHigh); }
};
// Least squares y = slope·x + intercept. Needs two distinct x; the interval needs three points.
LineFit fitLine(const std::vector<double>& x, const std::vector<double>& y);
// Student's t quantile for a two-sided 95 % interval with df degrees of freedom.
double studentT95(int df);

struct SweepRunResult {
    SweepJob job;
    bool finished = false;
    std::vector<LengthStats> domains;
    ForgetVerdict verdict;
    double seconds = 0; // training and evaluation, wall time
    std::string data;   // TokenCorpus::fingerprint of the training text; empty in older job.json
    // Where the result was read: "" for the sweep's own jobs/<id>/job.json, else the earlier
    // summary.json it came from (reportSweep's earlier), whose job folder is not here.
    std::string source;
    // Stored at a grain coarser than its reference window (job.json before 2026-12-06 at T_train 8 and
    // 16): its statistics were read against a wider window than the run judged, so they are close to
    // the run's own, not equal; its "done" line in the sweep's log has those.
    bool approximate = false;
};

// The bucket, in tokens, in which job.json stores the evaluation curves of a run trained at length T:
// as coarse as keeps exact every window a criterion reads (the reference window, T itself and the
// ranges at whole multiples of T), so that the report judges what the run judged.
int64_t storageGrain(int64_t trainingLength);
// Whether curves stored in buckets of `grain` tokens keep the reference window of T exact.
bool storedExactly(int64_t trainingLength, int64_t grain);
// The statistics a run is judged by, from its full evaluation, and the same read back from the curves
// job.json keeps, which is what `sweep report` judges: equal whenever storedExactly holds.
LengthStats runStats(const LengthEval& e, const ForgetCriterion& c);
LengthStats storedRunStats(const LengthEval& e, const ForgetCriterion& c);

// T_forget of one state size and seed: bracket [lo, hi] from the grid, interpolated on a log scale.
struct ForgetThreshold {
    uint64_t seed = 0;
    int64_t collapsesAt = 0;       // the largest collapsing T_train (0: none collapsed)
    int64_t forgetsFrom = 0;       // the smallest forgetting T_train (0: none forgot)
    bool monotone = true;          // every collapsing T_train lies below every forgetting one
    bool inside = false;           // both ends inside the grid
    double interpolated = 0;       // tokens, the crossing on log T (interpolatedBy); 0: no threshold
    int finished = 0, planned = 0; // training lengths with a finished job, and in the grid (the report)
    std::string interpolatedBy;    // "loss", "norm" or "middle" (the bracket's geometric middle)
    bool provisional = false;      // inside though other lengths of this seed are unfinished
};

struct StateSizeResult {
    int64_t axisValue = 0;
    int64_t stateSize = 0;
    std::vector<ForgetThreshold> seeds;
    bool seedsAgree = true; // the seeds' forgetsFrom within one grid step
    double tForget = 0;     // geometric mean of the seeds' interpolated values; 0 if any is not inside
    // What the state buys: per spec.trainLengths, the held-out NLL over the reference window
    // (referenceWindow), the mean over the held-out texts and then over the finished seeds; NaN where
    // no run of that length finished. The law assumes a larger state holds more of the context; if
    // the loss within T_train does not fall with N_S, the runs do not use the state they were given.
    std::vector<double> referenceNll;
    std::vector<int> referenceRuns; // finished runs behind each value
    // How far back its heads reach, per spec.trainLengths: the median head's half-life and the 90th
    // percentile's (LengthStats), in tokens, geometric means over the texts, then over the finished
    // seeds; NaN where unknown.
    std::vector<double> halfLifeMedian, halfLifeP90;
};

struct SweepReport {
    SweepSpec spec;
    std::vector<SweepRunResult> runs;
    std::vector<StateSizeResult> sizes;
    bool monotoneInStateSize = true; // T_forget does not fall as N_S grows
    LineFit fit; // T_forget[K = 1024 tokens] against N_S[M], over the sizes inside the grid
    int finished = 0;
    bool provisional = false; // reportSweep's provisional
    // The training texts of the finished jobs and how many jobs read each, in the order of the plan;
    // "" for jobs that did not record theirs. More than one: the jobs are not comparable (a corpus
    // rebuilt between sessions from updated packages, a spec pointed at another file).
    std::vector<std::pair<std::string, int>> trainingTexts;
};

// Thresholds of one size from runs sorted by training length. Inside the bracket the crossing is
// interpolated on log T for the part of the criterion that failed at its lower end: the score against
// `threshold` (linear in the score), the largest head's norm growth against maxNormGrowth (linear in its
// log), the later crossing where both failed; the bracket's geometric middle where that part does not
// cross between the two runs.
ForgetThreshold forgetThreshold(const std::vector<int64_t>& trainLengths,
                                const std::vector<ForgetVerdict>& verdicts, double threshold,
                                double maxNormGrowth = 0);

// Gathers every finished job and analyses them with spec.criterion. A seed's threshold needs all its
// training lengths finished; provisional (a sweep still running) also takes one whose bracket's ends
// are neighbouring grid lengths, both finished, and a size's T_forget from the seeds that have one.
// earlier: summary.json files of earlier reports of the same sweep, for jobs finished in another
// session whose folders did not travel. A planned job without a job.json here takes that summary's
// run of the same id, checked against the plan (N_S, T_train, seed, tokens, steps, batch) and the
// held-out texts, and judged again by spec.criterion from the statistics the summary kept. A
// job.json here always wins. Throws Error naming the file and field for another sweep, another
// criterion range, a "paper" criterion (whose statistics a summary does not keep) or a run that does
// not match the plan.
SweepReport reportSweep(const SweepSpec& spec, bool provisional = false,
                        const std::vector<std::string>& earlier = {});
// Writes <folder>/summary.json and summary.h5; returns their paths.
std::vector<std::string> writeSweepReport(const SweepReport& report, const std::string& folder);
// The report as text for the terminal: runs, thresholds, the fit.
std::string formatSweepReport(const SweepReport& report);

} // namespace statescope
