#include "probes/Probes.h"

namespace statescope {

std::vector<ProbeDesc> mamba2ProbeDescs(int64_t layers, int64_t heads)
{
    const std::vector<int64_t> shape{layers, heads};
    const std::vector<std::string> axes{"layer", "head"};
    const std::string head = "Mamba-2 SSM head: a headdim x d_state state matrix with one scalar decay";
    return {
        {"dt", "step size Delta = softplus(dt + dt_bias)", shape, axes, head},
        {"decay", "forget gate alpha = exp(Delta * A), A = -exp(A_log)", shape, axes, head},
        {"state_norm", "Frobenius norm of the head's SSM state after the token", shape, axes, head},
    };
}

} // namespace statescope
