// statescope-cli sweep: plan, run and report a sweep of trainings over state size × training length
// (runtime/Sweep.h, docs/sweeps.md).
#include "Commands.h"

#include "Error.h"
#include "models/ModelCard.h"
#include "runtime/Runner.h"
#include "runtime/Sweep.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace statescope::cli {

namespace {

// One child `statescope-cli sweep run --queue` per shard, each on the GPU it is given through
// CUDA_VISIBLE_DEVICES, so that a job sees one device and the children never share a CUDA context.
// The children take jobs from one queue: a fixed share would leave a shard idle while another still
// has its larger models to train.
int runLocalShards(const SweepArgs& a, const SweepSpec& spec, const std::atomic<bool>& cancel)
{
    const int shards = static_cast<int>(a.gpus.size()) * a.perGpu;
    const std::string logs = sweepFolder(spec) + "/logs";
    std::filesystem::create_directories(logs);
    std::vector<pid_t> children;
    for (int k = 0; k < shards; ++k) {
        const std::string gpu = a.gpus[static_cast<size_t>(k) % a.gpus.size()];
        const std::string log =
            logs + "/shard-" + std::to_string(k) + "-of-" + std::to_string(shards) + ".log";
        std::vector<std::string> args{
            "statescope-cli", "sweep", "run", a.spec, "--queue", "--device", gpu == "cpu" ? "cpu" : "cuda"};
        if (a.threads > 0)
            args.insert(args.end(), {"--threads", std::to_string(a.threads)});
        if (!a.jobs.empty()) {
            std::string ids;
            for (const auto& id : a.jobs)
                ids += (ids.empty() ? "" : ",") + id;
            args.insert(args.end(), {"--jobs", ids});
        }
        if (a.maxJobs > 0)
            args.insert(args.end(), {"--max-jobs", std::to_string(a.maxJobs)});
        if (a.takeFor >= 0)
            args.insert(args.end(), {"--take-for", std::to_string(a.takeFor)});
        std::vector<std::string> env;
        for (char** e = environ; *e; ++e)
            if (std::strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) != 0)
                env.emplace_back(*e);
        if (gpu != "cpu")
            env.push_back("CUDA_VISIBLE_DEVICES=" + gpu);
        std::vector<char*> argv, envp;
        for (auto& s : args)
            argv.push_back(s.data());
        argv.push_back(nullptr);
        for (auto& s : env)
            envp.push_back(s.data());
        envp.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        pid_t pid = 0;
        const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0)
            throw Error("/proc/self/exe", "cannot start a shard: " + std::string(std::strerror(rc)));
        std::printf("shard %d/%d on %s%s, log %s\n", k, shards, gpu == "cpu" ? "" : "GPU ", gpu.c_str(),
                    log.c_str());
        children.push_back(pid);
    }
    std::fflush(stdout);
    // A signal to this process alone (kill PID, a scheduler that signals one process) must not leave
    // the shards running: it is passed on once, and each shard stops as a single run would.
    std::vector<int> status(children.size(), 0);
    std::vector<bool> done(children.size(), false);
    size_t left = children.size();
    bool forwarded = false;
    while (left > 0) {
        for (size_t k = 0; k < children.size(); ++k) {
            if (done[k])
                continue;
            const pid_t r = waitpid(children[k], &status[k], WNOHANG);
            if (r == children[k] || (r < 0 && errno != EINTR)) {
                done[k] = true;
                --left;
            }
        }
        if (!forwarded && cancel.load()) {
            for (size_t k = 0; k < children.size(); ++k)
                if (!done[k])
                    ::kill(children[k], SIGTERM);
            forwarded = true;
        }
        if (left > 0)
            ::usleep(20000);
    }
    int failed = 0;
    for (size_t k = 0; k < children.size(); ++k) {
        if (!(WIFEXITED(status[k]) && WEXITSTATUS(status[k]) == 0)) {
            ++failed;
            std::fprintf(stderr, "statescope-cli: shard %zu/%d failed (%s %d); see its log\n", k, shards,
                         WIFEXITED(status[k]) ? "exit" : "signal",
                         WIFEXITED(status[k]) ? WEXITSTATUS(status[k]) : WTERMSIG(status[k]));
        }
    }
    if (failed)
        return kExitError;
    std::printf("all %d shards finished\n", shards);
    return 0;
}

} // namespace

int sweepCommand(const SweepArgs& a, const std::atomic<bool>& cancel)
{
    const SweepSpec spec = readSweepSpec(a.spec);
    if (a.action == "plan" && a.unfinished) {
        // What a machine without the earlier results should still run: the GPU machine's calls do not
        // carry them, so a cold one would train finished jobs again.
        const std::vector<SweepJob> all = planSweep(spec);
        const std::vector<SweepJob> order = a.jobs.empty() ? all : selectJobs(all, a.jobs, "--jobs");
        // Jobs finished in sessions whose folders are not here either: their committed summaries say so.
        // A job stored coarsely runs again unless its weights are here for sweep rejudge.
        int rejudgeable = 0;
        std::string ids;
        int left = 0;
        for (const std::string& id : unfinishedJobs(spec, order, a.earlier, &rejudgeable))
            ids += (left++ ? "," : "") + id;
        if (rejudgeable > 0)
            std::fprintf(stderr,
                         "%d finished jobs were stored coarsely and have their weights here: sweep rejudge "
                         "evaluates them again\n",
                         rejudgeable);
        std::printf("%s\n", ids.c_str());
        std::fprintf(stderr, "%d of %zu jobs unfinished\n", left, order.size());
        return 0;
    }
    if (a.action == "plan") {
        const std::vector<SweepJob> jobs = planSweep(spec);
        std::printf("%-5s %-30s %10s %8s %5s %6s %7s %11s %8s\n", "job", "id", "N_S", "T_train", "seed",
                    "batch", "steps", "tokens", "eval");
        int64_t tokens = 0;
        for (const SweepJob& job : jobs) {
            std::printf("%-5lld %-30s %10lld %8lld %5llu %6lld %7lld %11lld %8lld\n",
                        static_cast<long long>(job.index), job.id.c_str(),
                        static_cast<long long>(job.stateSize), static_cast<long long>(job.trainLength),
                        static_cast<unsigned long long>(job.seed), static_cast<long long>(job.batch),
                        static_cast<long long>(job.steps), static_cast<long long>(job.tokens),
                        static_cast<long long>(job.evalLength));
            tokens += job.tokens;
        }
        std::printf("%zu jobs, %lld training tokens in all; folder %s\n", jobs.size(),
                    static_cast<long long>(tokens), sweepFolder(spec).c_str());
        const std::string out = writeSweepPlan(spec, jobs, a.json);
        std::printf("plan written to %s\n", out.c_str());
        return 0;
    }
    if (a.action == "run") {
        if (!a.gpus.empty()) {
            if (a.shard != "0/1")
                throw Error("--gpus", "shard", "no --shard with --gpus (the shards are the GPUs')", a.shard);
            selectJobs(planSweep(spec), a.jobs, "--jobs"); // an unknown id fails here, not in every child
            return runLocalShards(a, spec, cancel);
        }
        if (a.queue && a.shard != "0/1")
            throw Error("--queue", "shard", "no --shard with --queue (the queue is shared)", a.shard);
        SweepRunOptions o;
        std::tie(o.shard, o.shards) = parseShard(a.shard, "--shard");
        o.device = a.device;
        o.threads = a.threads;
        o.maxJobs = a.maxJobs;
        o.takeForSeconds = a.takeFor;
        o.only = a.jobs;
        o.queue = a.queue;
        const int ran = runSweep(
            spec, o,
            [](const std::string& line) {
                std::printf("[sweep] %s\n", line.c_str());
                std::fflush(stdout);
            },
            &cancel);
        const std::string who = a.queue ? std::string("queue") : "shard " + a.shard;
        std::printf("%s: %d jobs run\n", who.c_str(), ran);
        return 0;
    }
    if (a.action == "rejudge") {
        const int n = rejudgeSweep(
            spec, a.jobs, a.device, a.threads,
            [](const std::string& line) {
                std::printf("[sweep] %s\n", line.c_str());
                std::fflush(stdout);
            },
            &cancel);
        std::printf("%d jobs evaluated again\n", n);
        return 0;
    }
    if (a.action == "judge") {
        int64_t T = a.trainLength;
        if (T <= 0) {
            const std::string cardPath = a.model + "/model_card.json";
            if (!std::filesystem::exists(cardPath))
                throw Error(a.model, "training length", "--train-length or a model_card.json", "neither");
            T = readModelCard(cardPath).trainingLength().value_or(0);
        }
        const std::string device = !a.device.empty() ? a.device : Runner::cudaAvailable() ? "cuda" : "cpu";
        const SweepJudgement j = judgeModel(spec, a.model, T, device, a.threads, &cancel);
        // "slowest": the slowest head's half-life in tokens (LengthStats::halfLifeMax).
        std::printf("%-12s %8s %8s %8s %9s %8s %8s\n", "domain", "ratio", "paired", "growth", "retained",
                    "slowest", "score");
        for (size_t k = 0; k < j.domains.size(); ++k) {
            const LengthStats& d = j.domains[k];
            std::printf("%-12s %8.3f %8.3f %7.2fx %8.1f%% %8.0f %8.3f\n", spec.heldOut[k].name.c_str(),
                        d.ratio, d.pairedRatio, d.normGrowth, 100 * d.retainedShare, d.halfLifeMax,
                        spec.criterion.score(d));
        }
        for (size_t k = 0; k < j.domains.size(); ++k) {
            const LengthStats& d = j.domains[k];
            std::printf("largest growth in %s: layer %lld head %lld, whose norm at T is %.3f of the median "
                        "head's\n",
                        spec.heldOut[k].name.c_str(), static_cast<long long>(d.growthLayer),
                        static_cast<long long>(d.growthHead), d.growthNormShare);
        }
        // The same words and figures as a sweep's "done" line, so that the two can be compared.
        std::printf("judged %s at T_train %lld: %s (score %.3f, growth %.2fx)%s%s\n", a.model.c_str(),
                    static_cast<long long>(T), j.verdict.forgets ? "forgets" : "collapses", j.verdict.score,
                    j.verdict.normGrowth, j.verdict.reason.empty() ? "" : ": ", j.verdict.reason.c_str());
        if (!a.json.empty()) {
            std::ofstream out(a.json);
            if (!(out << judgementJson(spec, j) << "\n"))
                throw Error(a.json, "cannot write the JSON file");
        }
        return 0;
    }
    // report
    const SweepReport r = reportSweep(spec, a.provisional, a.earlier);
    std::fputs(formatSweepReport(r).c_str(), stdout);
    for (const std::string& path : writeSweepReport(r, a.out.empty() ? sweepFolder(spec) : a.out))
        std::printf("written: %s\n", path.c_str());
    return 0;
}

} // namespace statescope::cli
