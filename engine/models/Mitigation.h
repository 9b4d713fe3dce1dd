#pragma once

// Training-free mitigations of state collapse (stuffed-mamba.md §4, docs/mitigations.md): knobs on a
// run that every architecture applies the same way in its chunked and its one-token path. Torch-free.
#include <string>

namespace statescope {

// "Reduce retention and insertion" (§4.1). 1 means off; at 1 a knob changes nothing, bit for bit.
// What each means in an architecture without Delta or B is in docs/mitigations.md.
struct Mitigation {
    double alpha = 1.0; // lambda_alpha: the forget gate alpha' = lambda_alpha * alpha, each token
    double B = 1.0;     // lambda_B: the input (B, the key) scaled
    double dt = 1.0;    // lambda_Delta: Delta' = lambda_Delta * Delta (forgetting and insertion)
    double A = 1.0;     // lambda_A: A' = lambda_A * A, so alpha' = alpha^lambda_A

    bool isIdentity() const { return alpha == 1.0 && B == 1.0 && dt == 1.0 && A == 1.0; }
    // "alpha=0.9999,B=0.75", or "none"; parseMitigation reads it back.
    std::string describe() const;
};

// The CLI's --mitigate: comma-separated "alpha=X", "B=X", "dt=X", "A=X" (or "none"). Throws Error
// naming the spec for an unknown knob, a value that is not a positive finite number (alpha at most
// 1), or a mitigation that is planned but not built yet (clip, renorm, window).
Mitigation parseMitigation(const std::string& spec);

} // namespace statescope
