#include "models/Mitigation.h"

#include "Error.h"

#include <cmath>
#include <cstdio>

namespace statescope {

namespace {

std::string number(double v)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

} // namespace

std::string Mitigation::describe() const
{
    std::string s;
    auto add = [&](const char* name, double v) {
        if (v != 1.0)
            s += (s.empty() ? "" : ",") + std::string(name) + "=" + number(v);
    };
    add("alpha", alpha);
    add("B", B);
    add("dt", dt);
    add("A", A);
    return s.empty() ? "none" : s;
}

Mitigation parseMitigation(const std::string& spec)
{
    Mitigation m;
    if (spec.empty() || spec == "none")
        return m;
    size_t start = 0;
    while (start <= spec.size()) {
        const size_t comma = spec.find(',', start);
        const std::string item =
            spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        const size_t eq = item.find('=');
        const std::string key = item.substr(0, eq);
        if (key == "clip" || key == "renorm" || key == "window")
            throw Error("--mitigate", key, "alpha=, B=, dt= or A= (" + key + " is planned, not built yet)",
                        "\"" + item + "\"");
        double* target = key == "alpha" ? &m.alpha
                         : key == "B"   ? &m.B
                         : key == "dt"  ? &m.dt
                         : key == "A"   ? &m.A
                                        : nullptr;
        if (!target || eq == std::string::npos)
            throw Error("--mitigate", "knob", "alpha=X, B=X, dt=X or A=X, comma-separated",
                        "\"" + item + "\"");
        const std::string text = item.substr(eq + 1);
        size_t used = 0;
        double v = NAN;
        try {
            v = std::stod(text, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (text.empty() || used != text.size() || !std::isfinite(v) || v <= 0 ||
            (target == &m.alpha && v > 1))
            throw Error("--mitigate", key, target == &m.alpha ? "a number in (0, 1]" : "a positive number",
                        "\"" + text + "\"");
        *target = v;
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    return m;
}

} // namespace statescope
