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

double positiveNumber(const std::string& key, const std::string& text, double max)
{
    size_t used = 0;
    double v = NAN;
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (text.empty() || used != text.size() || !std::isfinite(v) || v <= 0 || v > max)
        throw Error("--mitigate", key, max == 1 ? "a number in (0, 1]" : "a positive number",
                    "\"" + text + "\"");
    return v;
}

int64_t positiveCount(const std::string& key, const std::string& text)
{
    const std::string expected = "a whole number of tokens in [1, 2^40]";
    if (text.empty() || text.size() > 13 || text.find_first_not_of("0123456789") != std::string::npos)
        throw Error("--mitigate", key, expected, "\"" + text + "\"");
    const int64_t v = std::stoll(text);
    if (v < 1 || v > (int64_t(1) << 40))
        throw Error("--mitigate", key, expected, "\"" + text + "\"");
    return v;
}

} // namespace

SnapshotWindow SnapshotWindow::of(int64_t window, int64_t every)
{
    if (window <= 0)
        return {0, 1};
    return {window, every > 0 ? every : window % 16 == 0 ? window / 16 : 1};
}

int64_t Mitigation::snapshotEvery() const
{
    return window > 0 ? SnapshotWindow::of(window, snapshot).every : 0;
}

std::string Mitigation::describe() const
{
    std::string s;
    auto put = [&](const std::string& item) { s += (s.empty() ? "" : ",") + item; };
    auto add = [&](const char* name, double v) {
        if (v != 1.0)
            put(std::string(name) + "=" + number(v));
    };
    add("alpha", alpha);
    add("B", B);
    add("dt", dt);
    add("A", A);
    if (clip > 0)
        put("clip=" + number(clip));
    if (renorm)
        put("renorm");
    if (normalises())
        put("every=" + std::to_string(every));
    if (window > 0) {
        put("window=" + std::to_string(window));
        put("snapshot=" + std::to_string(snapshotEvery()));
    }
    return s.empty() ? "none" : s;
}

Mitigation parseMitigation(const std::string& spec)
{
    Mitigation m;
    if (spec.empty() || spec == "none")
        return m;
    bool everySet = false;
    size_t start = 0;
    while (start <= spec.size()) {
        const size_t comma = spec.find(',', start);
        const std::string item =
            spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        const size_t eq = item.find('=');
        const std::string key = item.substr(0, eq);
        const std::string text = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (key == "renorm" && eq == std::string::npos) {
            m.renorm = true;
        } else if (eq == std::string::npos) {
            throw Error("--mitigate", "knob",
                        "alpha=X, B=X, dt=X, A=X, clip=C, renorm, every=N, window=R or snapshot=S, "
                        "comma-separated",
                        "\"" + item + "\"");
        } else if (key == "alpha") {
            m.alpha = positiveNumber(key, text, 1);
        } else if (key == "B" || key == "dt" || key == "A" || key == "clip") {
            (key == "B"    ? m.B
             : key == "dt" ? m.dt
             : key == "A"  ? m.A
                           : m.clip) = positiveNumber(key, text, HUGE_VAL);
        } else if (key == "every") {
            m.every = positiveCount(key, text);
            everySet = true;
        } else if (key == "window") {
            m.window = positiveCount(key, text);
        } else if (key == "snapshot") {
            m.snapshot = positiveCount(key, text);
        } else {
            throw Error("--mitigate", "knob",
                        "alpha=X, B=X, dt=X, A=X, clip=C, renorm, every=N, window=R or snapshot=S, "
                        "comma-separated",
                        "\"" + item + "\"");
        }
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    if (m.clip > 0 && m.renorm)
        throw Error("--mitigate", "clip, renorm", "one of them (renorm sets the norm, clip bounds it)",
                    "both in \"" + spec + "\"");
    if (everySet && !m.normalises())
        throw Error("--mitigate", "every", "clip=C or renorm beside it (every is how often they act)",
                    "\"" + spec + "\"");
    if (m.snapshot > 0 && m.window <= 0)
        throw Error("--mitigate", "snapshot", "window=R beside it", "\"" + spec + "\"");
    if (m.snapshot > 0 && m.window % m.snapshot != 0)
        throw Error("--mitigate", "snapshot", "a divisor of window=" + std::to_string(m.window),
                    std::to_string(m.snapshot));
    return m;
}

} // namespace statescope
