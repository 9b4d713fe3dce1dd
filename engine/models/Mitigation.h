#pragma once

// Training-free mitigations of state collapse (stuffed-mamba.md §4, docs/mitigations.md): knobs on a
// run that every architecture applies the same way in its chunked and its one-token path. Torch-free.
#include <cstdint>
#include <string>
#include <vector>

namespace statescope {

// A read-out window kept with snapshots: the token at position n (from 1) reads against the state after
// b = ceil(n / every) * every - window tokens, so it spans window - every + 1 .. window tokens.
struct SnapshotWindow {
    int64_t window = 0; // 0: none
    int64_t every = 1;
    // r / 16 when 16 divides r, else 1 (exact).
    static SnapshotWindow of(int64_t window, int64_t every = 0);
};

struct Mitigation {
    // "Reduce retention and insertion" (§4.1). 1 means off; at 1 a knob changes nothing, bit for bit.
    // What each means in an architecture without Delta or B is in docs/mitigations.md.
    double alpha = 1.0; // lambda_alpha: the forget gate alpha' = lambda_alpha * alpha, each token
    double B = 1.0;     // lambda_B: the input (B, the key) scaled
    double dt = 1.0;    // lambda_Delta: Delta' = lambda_Delta * Delta (forgetting and insertion)
    double A = 1.0;     // lambda_A: A' = lambda_A * A, so alpha' = alpha^lambda_A

    // State normalisation (§4.2), per state unit (a Mamba-2 head; a Mamba-1 channel): after the
    // token's read-out, the state carried on is clipped to clip * tau (clip > 0) or set to norm tau
    // (renorm). It acts after every token whose position (counted from 1 since the stream's start) is
    // a multiple of `every`, in both paths alike: every = 1 is exact per token; larger values let the
    // chunked path scan longer segments.
    double clip = 0;
    bool renorm = false;
    int64_t every = 1;
    // Per layer and unit: the calibrated norms (Runner::calibrate fills them; empty until then).
    std::vector<std::vector<float>> tau;
    std::string calibration; // what tau was measured on, for the trace

    // Sliding window by state difference (§4.3): the read-out uses h_t - alpha_{b+1:t} h_b, with b the
    // snapshot taken every `snapshot` tokens, so it spans the last window - snapshot + 1 .. window
    // tokens; snapshot = 1 is the exact window (one stored state per token of it). The recurrence
    // itself runs on the full state.
    int64_t window = 0;
    int64_t snapshot = 0; // 0: window / 16 when that divides it, else 1

    bool normalises() const { return clip > 0 || renorm; }
    int64_t snapshotEvery() const;
    SnapshotWindow windowSpec() const { return {window, snapshotEvery()}; }
    // Whether the run depends on token positions (normalisation, window): then each architecture
    // cuts its chunks at those positions and a decode step cannot be replayed as one graph.
    bool positional() const { return normalises() || window > 0; }
    bool isIdentity() const { return alpha == 1.0 && B == 1.0 && dt == 1.0 && A == 1.0 && !positional(); }
    // "alpha=0.9999,B=0.75,clip=1.5,every=64,window=4096,snapshot=256", or "none"; parseMitigation
    // reads it back (tau is not part of it).
    std::string describe() const;
};

// The CLI's --mitigate: comma-separated "alpha=X", "B=X", "dt=X", "A=X", "clip=C", "renorm",
// "every=N", "window=R", "snapshot=S" (or "none"). Throws Error naming the spec for an unknown knob,
// a value out of range (alpha in (0, 1], counts positive integers, snapshot dividing window), clip
// with renorm, or every/snapshot without what they refine.
Mitigation parseMitigation(const std::string& spec);

} // namespace statescope
