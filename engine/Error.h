#pragma once

#include <stdexcept>
#include <string>

namespace statescope {

// Every failure the engine reports to a user. It names the file, the field or tensor that was wrong,
// and, where there is one, the value expected and the value found, so that the CLI and the GUI can
// show one line that tells the user what to fix.
class Error : public std::runtime_error {
public:
    Error(std::string file, std::string message);
    Error(std::string file, std::string field, std::string expected, std::string actual);

    const std::string& file() const { return m_file; }
    const std::string& field() const { return m_field; }
    const std::string& expected() const { return m_expected; }
    const std::string& actual() const { return m_actual; }

private:
    std::string m_file;
    std::string m_field;
    std::string m_expected;
    std::string m_actual;
};

// Thrown when a run is cancelled between chunks; not an error for the user.
class Cancelled : public std::runtime_error {
public:
    Cancelled() : std::runtime_error("cancelled") {}
};

// s with its control characters (C0, DEL, C1) written as \xNN / \u00NN: Error's messages are made
// with it, and so is anything else that prints text from a file.
std::string escapeControls(const std::string& s);

// One line for the user from any exception: what() with its control characters escaped. LibTorch's
// errors append a C++ backtrace ("Exception raised from ...", "frame #0: ...") that says nothing to a
// user and made one error 27 lines; it is cut off, and so is anything after the first line break.
std::string errorLine(const std::exception& e);
std::string errorLine(const std::string& what);

// "[2, 3]" for shapes in messages.
std::string shapeToString(const int64_t* dims, size_t n);
template <typename Container> std::string shapeToString(const Container& c)
{
    return shapeToString(c.data(), c.size());
}

} // namespace statescope
