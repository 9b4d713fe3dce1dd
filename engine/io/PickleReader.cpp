#include "io/PickleReader.h"

#include "Error.h"

#include <cctype>
#include <cstdio>
#include <cstring>

namespace statescope {

const char* PickleValue::kindName() const
{
    switch (kind) {
    case Kind::None:
        return "None";
    case Kind::Bool:
        return "bool";
    case Kind::Int:
        return "int";
    case Kind::Float:
        return "float";
    case Kind::String:
        return "str";
    case Kind::Bytes:
        return "bytes";
    case Kind::Tuple:
        return "tuple";
    case Kind::List:
        return "list";
    case Kind::Dict:
        return "dict";
    case Kind::Global:
        return "global";
    case Kind::Storage:
        return "storage";
    case Kind::Tensor:
        return "tensor";
    }
    return "?";
}

const PickleValue* PickleValue::get(const std::string& key) const
{
    if (kind != Kind::Dict)
        return nullptr;
    auto it = dictIndex.find("s" + key);
    return it == dictIndex.end() ? nullptr : dictItems[it->second].second.get();
}

namespace {

// Every object a state dict needs; nothing here has side effects when "called".
const char* const kOrderedDict = "collections.OrderedDict";
const char* const kRebuildTensorV2 = "torch._utils._rebuild_tensor_v2";
const char* const kRebuildParameter = "torch._utils._rebuild_parameter";
const char* const kRebuildParameterWithState = "torch._utils._rebuild_parameter_with_state";

struct StorageClass {
    const char* name;
    DType dtype;
};
const StorageClass kStorageClasses[] = {
    {"torch.FloatStorage", DType::Float32}, {"torch.DoubleStorage", DType::Float64},
    {"torch.HalfStorage", DType::Float16},  {"torch.BFloat16Storage", DType::BFloat16},
    {"torch.LongStorage", DType::Int64},    {"torch.IntStorage", DType::Int32},
    {"torch.ShortStorage", DType::Int16},   {"torch.CharStorage", DType::Int8},
    {"torch.ByteStorage", DType::UInt8},    {"torch.BoolStorage", DType::Bool},
};

bool isAllowedGlobal(const std::string& qualified)
{
    if (qualified == kOrderedDict || qualified == kRebuildTensorV2 || qualified == kRebuildParameter ||
        qualified == kRebuildParameterWithState)
        return true;
    for (const StorageClass& s : kStorageClasses) {
        if (qualified == s.name)
            return true;
    }
    return false;
}

// Names in messages come from the file: keep them short and printable.
std::string printable(const std::string& s)
{
    std::string out;
    for (size_t i = 0; i < s.size() && i < 120; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
    }
    if (s.size() > 120)
        out += "...";
    return out;
}

enum Op : uint8_t {
    MARK = '(',
    STOP = '.',
    POP = '0',
    POP_MARK = '1',
    DUP = '2',
    FLOAT = 'F',
    INT = 'I',
    BININT = 'J',
    BININT1 = 'K',
    LONG = 'L',
    BININT2 = 'M',
    NONE = 'N',
    PERSID = 'P',
    BINPERSID = 'Q',
    REDUCE = 'R',
    STRING = 'S',
    BINSTRING = 'T',
    SHORT_BINSTRING = 'U',
    UNICODE = 'V',
    BINUNICODE = 'X',
    APPEND = 'a',
    BUILD = 'b',
    GLOBAL = 'c',
    DICT = 'd',
    EMPTY_DICT = '}',
    APPENDS = 'e',
    GET = 'g',
    BINGET = 'h',
    INST = 'i',
    LONG_BINGET = 'j',
    LIST = 'l',
    EMPTY_LIST = ']',
    OBJ = 'o',
    PUT = 'p',
    BINPUT = 'q',
    LONG_BINPUT = 'r',
    SETITEM = 's',
    TUPLE = 't',
    EMPTY_TUPLE = ')',
    SETITEMS = 'u',
    BINFLOAT = 'G',
    PROTO = 0x80,
    NEWOBJ = 0x81,
    EXT1 = 0x82,
    EXT2 = 0x83,
    EXT4 = 0x84,
    TUPLE1 = 0x85,
    TUPLE2 = 0x86,
    TUPLE3 = 0x87,
    NEWTRUE = 0x88,
    NEWFALSE = 0x89,
    LONG1 = 0x8a,
    LONG4 = 0x8b,
    BINBYTES = 'B',
    SHORT_BINBYTES = 'C',
    SHORT_BINUNICODE = 0x8c,
    BINUNICODE8 = 0x8d,
    BINBYTES8 = 0x8e,
    EMPTY_SET = 0x8f,
    ADDITEMS = 0x90,
    FROZENSET = 0x91,
    NEWOBJ_EX = 0x92,
    STACK_GLOBAL = 0x93,
    MEMOIZE = 0x94,
    FRAME = 0x95,
    BYTEARRAY8 = 0x96,
    NEXT_BUFFER = 0x97,
    READONLY_BUFFER = 0x98,
};

} // namespace

class PickleReader::Impl {
public:
    Impl(const uint8_t* data, size_t size, std::string file, std::string entry)
        : m_data(data), m_size(size), m_file(std::move(file)), m_entry(std::move(entry)),
          m_budget(kBaseBudget + kBudgetPerByte * size)
    {
    }

    ~Impl()
    {
        // Containers may nest arbitrarily deep or even contain themselves (a hostile pickle can do
        // both through the memo). Emptying every container while the registry still holds them all
        // makes each destruction shallow: no recursion, no leaked cycles.
        m_stack.clear();
        m_memo.clear();
        for (const PickleValuePtr& c : m_containers) {
            std::vector<PickleValuePtr> items;
            items.swap(c->items);
            std::vector<std::pair<PickleValuePtr, PickleValuePtr>> dictItems;
            dictItems.swap(c->dictItems);
        }
        m_result.reset();
        m_containers.clear();
    }

    const PickleValue& load()
    {
        if (m_result)
            return *m_result;
        run();
        return *m_result;
    }

private:
    using Kind = PickleValue::Kind;

    [[noreturn]] void fail(const std::string& message) const
    {
        throw Error(m_file, m_entry + " at byte " + std::to_string(m_opPos) + ": " + message);
    }

    void need(size_t n, const char* what) const
    {
        if (n > m_size - m_pos)
            fail(std::string("unexpected end of pickle while reading ") + what + " (truncated file?)");
    }
    uint8_t u8(const char* what)
    {
        need(1, what);
        return m_data[m_pos++];
    }
    uint64_t uLE(size_t n, const char* what)
    {
        need(n, what);
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i)
            v |= static_cast<uint64_t>(m_data[m_pos + i]) << (8 * i);
        m_pos += n;
        return v;
    }
    std::string bytes(uint64_t n, const char* what)
    {
        if (n > m_size - m_pos)
            fail(std::string("unexpected end of pickle while reading ") + what + " of " + std::to_string(n) +
                 " bytes (truncated file?)");
        std::string s(reinterpret_cast<const char*>(m_data + m_pos), static_cast<size_t>(n));
        m_pos += static_cast<size_t>(n);
        return s;
    }
    std::string line(const char* what)
    {
        const void* nl = std::memchr(m_data + m_pos, '\n', m_size - m_pos);
        if (!nl)
            fail(std::string("unexpected end of pickle while reading ") + what + " (no newline)");
        size_t len = static_cast<const uint8_t*>(nl) - (m_data + m_pos);
        std::string s(reinterpret_cast<const char*>(m_data + m_pos), len);
        m_pos += len + 1;
        return s;
    }

    // Memory this pickle makes the reader hold, in proportion to its own size: a memo entry can be
    // fetched any number of times for a few bytes each, and every fetch used as a dict key copied the
    // key (a 1 MB pickle took 3.2 GB). A real state dict's pickle needs far less than the budget.
    void charge(size_t bytes)
    {
        m_charged += bytes;
        if (m_charged > m_budget)
            fail("the pickle would take more than " + std::to_string(m_budget >> 20) + " MiB of memory to read (" +
                 std::to_string(kBudgetPerByte) + " bytes per byte of pickle, plus " +
                 std::to_string(kBaseBudget >> 20) + " MiB); a state dict takes far less: refused");
    }

    PickleValuePtr make(Kind kind)
    {
        if (++m_valueCount > kMaxValues)
            fail("more than " + std::to_string(kMaxValues) + " objects; not a state dict");
        charge(sizeof(PickleValue) + 32);
        auto v = std::make_shared<PickleValue>();
        v->kind = kind;
        if (kind == Kind::Tuple || kind == Kind::List || kind == Kind::Dict)
            m_containers.push_back(v);
        return v;
    }
    PickleValuePtr makeInt(int64_t i)
    {
        auto v = make(Kind::Int);
        v->intValue = i;
        return v;
    }
    PickleValuePtr makeString(Kind kind, std::string s)
    {
        charge(s.size());
        auto v = make(kind);
        v->text = std::move(s);
        return v;
    }

    size_t frameBase() const { return m_marks.empty() ? 0 : m_marks.back(); }
    void push(PickleValuePtr v)
    {
        if (m_stack.size() >= kMaxStack)
            fail("pickle stack deeper than " + std::to_string(kMaxStack));
        m_stack.push_back(std::move(v));
    }
    PickleValuePtr pop()
    {
        if (m_stack.size() <= frameBase())
            fail("pickle stack underflow");
        PickleValuePtr v = std::move(m_stack.back());
        m_stack.pop_back();
        return v;
    }
    PickleValuePtr& top()
    {
        if (m_stack.size() <= frameBase())
            fail("pickle stack underflow");
        return m_stack.back();
    }
    std::vector<PickleValuePtr> popToMark()
    {
        if (m_marks.empty())
            fail("pickle MARK expected but missing");
        size_t base = m_marks.back();
        m_marks.pop_back();
        charge((m_stack.size() - base) * sizeof(PickleValuePtr));
        std::vector<PickleValuePtr> items(std::make_move_iterator(m_stack.begin() + base),
                                          std::make_move_iterator(m_stack.end()));
        m_stack.resize(base);
        return items;
    }

    void memoPut(uint64_t index)
    {
        PickleValuePtr v = top();
        auto it = m_memo.find(index);
        if (it != m_memo.end()) {
            it->second = std::move(v);
            return;
        }
        if (m_memo.size() >= kMaxMemo)
            fail("pickle memo larger than " + std::to_string(kMaxMemo) + " entries");
        m_memo.emplace(index, std::move(v));
    }
    void memoGet(uint64_t index)
    {
        auto it = m_memo.find(index);
        if (it == m_memo.end())
            fail("pickle memo entry " + std::to_string(index) + " is missing");
        push(it->second);
    }

    std::string dictKey(const PickleValue& k)
    {
        switch (k.kind) {
        case Kind::String:
            return "s" + k.text;
        case Kind::Bytes:
            return "b" + k.text;
        case Kind::Int:
            return "i" + std::to_string(k.intValue);
        case Kind::Bool:
            return "i" + std::to_string(k.boolValue ? 1 : 0);
        case Kind::None:
            return "n";
        case Kind::Float: {
            char buf[40];
            std::snprintf(buf, sizeof buf, "f%.17g", k.floatValue);
            return buf;
        }
        default:
            fail(std::string("unsupported dict key of type ") + k.kindName());
        }
    }
    void setItem(PickleValue& dict, PickleValuePtr key, PickleValuePtr value)
    {
        if (dict.kind != Kind::Dict)
            fail(std::string("SETITEM on a ") + dict.kindName() + ", expected a dict");
        std::string k = dictKey(*key);
        charge(k.size() + 64);
        auto it = dict.dictIndex.find(k);
        if (it != dict.dictIndex.end()) {
            dict.dictItems[it->second].second = std::move(value); // Python keeps the first position
            return;
        }
        dict.dictIndex.emplace(std::move(k), dict.dictItems.size());
        dict.dictItems.emplace_back(std::move(key), std::move(value));
    }

    PickleValuePtr makeTuple(std::vector<PickleValuePtr> items)
    {
        auto t = make(Kind::Tuple);
        t->items = std::move(items);
        return t;
    }

    void pushGlobal(const std::string& module, const std::string& name)
    {
        std::string qualified = module + "." + name;
        if (!isAllowedGlobal(qualified))
            throw Error(m_file, "refusing to load " + printable(qualified) +
                                    ": not allowed in a checkpoint (" + m_entry + " at byte " +
                                    std::to_string(m_opPos) + ")");
        push(makeString(Kind::Global, qualified));
    }

    int64_t intArg(const PickleValue& v, const char* what)
    {
        if (v.kind == Kind::Int)
            return v.intValue;
        if (v.kind == Kind::Bool)
            return v.boolValue ? 1 : 0;
        fail(std::string(what) + " must be an int, got " + v.kindName());
    }
    std::vector<int64_t> intTuple(const PickleValue& v, const char* what)
    {
        if (v.kind != Kind::Tuple && v.kind != Kind::List)
            fail(std::string(what) + " must be a tuple of ints, got " + v.kindName());
        if (v.items.size() > 64)
            fail(std::string(what) + " has " + std::to_string(v.items.size()) + " dimensions (at most 64)");
        std::vector<int64_t> out;
        for (const PickleValuePtr& item : v.items) {
            int64_t i = intArg(*item, what);
            if (i < 0)
                fail(std::string(what) + " contains a negative value " + std::to_string(i));
            out.push_back(i);
        }
        return out;
    }

    PickleValuePtr rebuildTensor(const std::vector<PickleValuePtr>& args)
    {
        if (args.size() != 6 && args.size() != 7)
            fail("_rebuild_tensor_v2 expects 6 or 7 arguments, got " + std::to_string(args.size()));
        if (args[0]->kind != Kind::Storage)
            fail(std::string("_rebuild_tensor_v2: storage argument is a ") + args[0]->kindName());
        auto t = std::make_shared<PickleTensor>();
        t->storage = *args[0]->storage;
        t->storageOffset = intArg(*args[1], "storage offset");
        if (t->storageOffset < 0)
            fail("negative storage offset " + std::to_string(t->storageOffset));
        t->shape = intTuple(*args[2], "tensor size");
        t->strides = intTuple(*args[3], "tensor stride");
        if (t->shape.size() != t->strides.size())
            fail("tensor size " + shapeToString(t->shape) + " and stride " + shapeToString(t->strides) +
                 " have different lengths");
        t->requiresGrad = intArg(*args[4], "requires_grad") != 0;
        // args[5] (backward hooks) and args[6] (tensor metadata) do not affect the values.
        auto v = make(Kind::Tensor);
        v->tensor = std::move(t);
        return v;
    }

    void reduce()
    {
        PickleValuePtr args = pop();
        PickleValuePtr callable = pop();
        if (callable->kind != Kind::Global)
            fail(std::string("REDUCE on a ") + callable->kindName() + ", expected an allowed global");
        if (args->kind != Kind::Tuple)
            fail(std::string("REDUCE arguments are a ") + args->kindName() + ", expected a tuple");
        const std::string& fn = callable->text;
        const std::vector<PickleValuePtr>& a = args->items;
        if (fn == kOrderedDict) {
            if (!a.empty())
                fail("OrderedDict with arguments is not supported");
            push(make(Kind::Dict));
        } else if (fn == kRebuildTensorV2) {
            push(rebuildTensor(a));
        } else if (fn == kRebuildParameter || fn == kRebuildParameterWithState) {
            size_t expected = fn == kRebuildParameter ? 3 : 4;
            if (a.size() != expected)
                fail(printable(fn) + " expects " + std::to_string(expected) + " arguments, got " +
                     std::to_string(a.size()));
            if (a[0]->kind != Kind::Tensor)
                fail(printable(fn) + ": data argument is a " + a[0]->kindName() + ", expected a tensor");
            push(a[0]);
        } else {
            fail("cannot call " + printable(fn));
        }
    }

    void persistentLoad()
    {
        PickleValuePtr pid = pop();
        if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::String ||
            pid->items[0]->text != "storage")
            fail("persistent id is not a ('storage', type, key, location, numel) tuple");
        const PickleValue& type = *pid->items[1];
        const PickleValue& key = *pid->items[2];
        const PickleValue& location = *pid->items[3];
        auto s = std::make_shared<PickleStorage>();
        bool known = false;
        if (type.kind == Kind::Global) {
            for (const StorageClass& c : kStorageClasses) {
                if (type.text == c.name) {
                    s->dtype = c.dtype;
                    known = true;
                }
            }
        }
        if (!known)
            fail(std::string("persistent id names a ") + type.kindName() + " '" + printable(type.text) +
                 "', expected a torch storage class");
        if (key.kind != Kind::String || key.text.empty() || key.text.size() > 64)
            fail("storage key must be a short string");
        for (char c : key.text) {
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
                fail("storage key '" + printable(key.text) +
                     "' has characters other than letters, digits and _");
        }
        charge(key.text.size() + location.text.size() + sizeof(PickleStorage));
        s->key = key.text;
        if (location.kind != Kind::String)
            fail("storage location must be a string");
        s->location = location.text;
        s->numel = intArg(*pid->items[4], "storage size");
        if (s->numel < 0)
            fail("negative storage size " + std::to_string(s->numel));
        auto v = make(Kind::Storage);
        v->storage = std::move(s);
        push(v);
    }

    void run()
    {
        while (true) {
            m_opPos = m_pos;
            if (m_pos >= m_size)
                fail("pickle ends without a STOP opcode (truncated file?)");
            uint8_t op = m_data[m_pos++];
            switch (op) {
            case PROTO: {
                uint8_t proto = u8("protocol number");
                if (proto > 5)
                    fail("unsupported pickle protocol " + std::to_string(proto));
                break;
            }
            case FRAME: {
                // Frames only group opcodes for buffered reading; the data is already in memory.
                uint64_t len = uLE(8, "frame length");
                if (len > m_size - m_pos)
                    fail("frame of " + std::to_string(len) + " bytes runs past the end of the pickle");
                break;
            }
            case STOP: {
                PickleValuePtr v = pop();
                if (!m_marks.empty() || !m_stack.empty())
                    fail("pickle stack not empty at STOP");
                m_result = std::move(v);
                return;
            }
            case MARK:
                if (m_marks.size() >= kMaxMarks)
                    fail("more than " + std::to_string(kMaxMarks) + " nested MARKs");
                m_marks.push_back(m_stack.size());
                break;
            case POP:
                if (m_stack.size() > frameBase())
                    m_stack.pop_back();
                else
                    popToMark();
                break;
            case POP_MARK:
                popToMark();
                break;
            case DUP:
                push(top());
                break;
            case NONE:
                push(make(Kind::None));
                break;
            case NEWTRUE:
            case NEWFALSE: {
                auto v = make(Kind::Bool);
                v->boolValue = op == NEWTRUE;
                push(v);
                break;
            }
            case BININT:
                push(makeInt(static_cast<int32_t>(static_cast<uint32_t>(uLE(4, "BININT")))));
                break;
            case BININT1:
                push(makeInt(u8("BININT1")));
                break;
            case BININT2:
                push(makeInt(static_cast<int64_t>(uLE(2, "BININT2"))));
                break;
            case LONG1:
            case LONG4: {
                uint64_t n = op == LONG1 ? u8("LONG1 length") : uLE(4, "LONG4 length");
                if (n > 8)
                    fail("integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
                uint64_t raw = uLE(static_cast<size_t>(n), "LONG bytes");
                if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1)
                    raw |= ~uint64_t(0) << (8 * n); // sign-extend
                push(makeInt(static_cast<int64_t>(raw)));
                break;
            }
            case INT:
            case LONG: {
                std::string s = line("INT");
                if (op == INT && (s == "00" || s == "01")) {
                    auto v = make(Kind::Bool);
                    v->boolValue = s == "01";
                    push(v);
                    break;
                }
                if (op == LONG && !s.empty() && s.back() == 'L')
                    s.pop_back();
                push(makeInt(parseDecimal(s)));
                break;
            }
            case BINFLOAT: {
                need(8, "BINFLOAT");
                uint64_t bits = 0;
                for (int i = 0; i < 8; ++i)
                    bits = (bits << 8) | m_data[m_pos + i]; // big-endian
                m_pos += 8;
                auto v = make(Kind::Float);
                std::memcpy(&v->floatValue, &bits, 8);
                push(v);
                break;
            }
            case SHORT_BINUNICODE:
                push(makeString(Kind::String, bytes(u8("length"), "string")));
                break;
            case BINUNICODE:
                push(makeString(Kind::String, bytes(uLE(4, "length"), "string")));
                break;
            case BINUNICODE8:
                push(makeString(Kind::String, bytes(uLE(8, "length"), "string")));
                break;
            case SHORT_BINSTRING:
                push(makeString(Kind::String, bytes(u8("length"), "string")));
                break;
            case BINSTRING: {
                uint64_t n = uLE(4, "length");
                if (n & 0x80000000u)
                    fail("negative BINSTRING length");
                push(makeString(Kind::String, bytes(n, "string")));
                break;
            }
            case SHORT_BINBYTES:
                push(makeString(Kind::Bytes, bytes(u8("length"), "bytes")));
                break;
            case BINBYTES:
                push(makeString(Kind::Bytes, bytes(uLE(4, "length"), "bytes")));
                break;
            case BINBYTES8:
            case BYTEARRAY8:
                push(makeString(Kind::Bytes, bytes(uLE(8, "length"), "bytes")));
                break;
            case EMPTY_TUPLE:
                push(make(Kind::Tuple));
                break;
            case TUPLE:
                push(makeTuple(popToMark()));
                break;
            case TUPLE1:
            case TUPLE2:
            case TUPLE3: {
                size_t n = op - TUPLE1 + 1;
                std::vector<PickleValuePtr> items(n);
                for (size_t i = n; i-- > 0;)
                    items[i] = pop();
                push(makeTuple(std::move(items)));
                break;
            }
            case EMPTY_LIST:
                push(make(Kind::List));
                break;
            case LIST: {
                auto l = make(Kind::List);
                l->items = popToMark();
                push(l);
                break;
            }
            case APPEND: {
                PickleValuePtr v = pop();
                PickleValue& list = *top();
                if (list.kind != Kind::List)
                    fail(std::string("APPEND to a ") + list.kindName() + ", expected a list");
                charge(sizeof(PickleValuePtr));
                list.items.push_back(std::move(v));
                break;
            }
            case APPENDS: {
                std::vector<PickleValuePtr> items = popToMark();
                PickleValue& list = *top();
                if (list.kind != Kind::List)
                    fail(std::string("APPENDS to a ") + list.kindName() + ", expected a list");
                for (PickleValuePtr& v : items)
                    list.items.push_back(std::move(v));
                break;
            }
            case EMPTY_DICT:
                push(make(Kind::Dict));
                break;
            case DICT: {
                std::vector<PickleValuePtr> items = popToMark();
                if (items.size() % 2)
                    fail("DICT with an odd number of items");
                auto d = make(Kind::Dict);
                for (size_t i = 0; i < items.size(); i += 2)
                    setItem(*d, items[i], items[i + 1]);
                push(d);
                break;
            }
            case SETITEM: {
                PickleValuePtr value = pop();
                PickleValuePtr key = pop();
                setItem(*top(), std::move(key), std::move(value));
                break;
            }
            case SETITEMS: {
                std::vector<PickleValuePtr> items = popToMark();
                if (items.size() % 2)
                    fail("SETITEMS with an odd number of items");
                PickleValue& dict = *top();
                for (size_t i = 0; i < items.size(); i += 2)
                    setItem(dict, items[i], items[i + 1]);
                break;
            }
            case PUT:
                memoPut(parseUnsigned(line("PUT index")));
                break;
            case BINPUT:
                memoPut(u8("BINPUT index"));
                break;
            case LONG_BINPUT:
                memoPut(uLE(4, "LONG_BINPUT index"));
                break;
            case MEMOIZE:
                memoPut(m_memo.size());
                break;
            case GET:
                memoGet(parseUnsigned(line("GET index")));
                break;
            case BINGET:
                memoGet(u8("BINGET index"));
                break;
            case LONG_BINGET:
                memoGet(uLE(4, "LONG_BINGET index"));
                break;
            case GLOBAL: {
                std::string module = line("GLOBAL module");
                std::string name = line("GLOBAL name");
                pushGlobal(module, name);
                break;
            }
            case STACK_GLOBAL: {
                PickleValuePtr name = pop();
                PickleValuePtr module = pop();
                if (module->kind != Kind::String || name->kind != Kind::String)
                    fail("STACK_GLOBAL needs two strings");
                pushGlobal(module->text, name->text);
                break;
            }
            case REDUCE:
                reduce();
                break;
            case BUILD: {
                PickleValuePtr state = pop();
                PickleValue& obj = *top();
                // OrderedDict state is its __dict__, i.e. the state dict's _metadata: not needed.
                if (obj.kind != Kind::Dict)
                    fail(std::string("BUILD on a ") + obj.kindName() + " is not supported");
                break;
            }
            case BINPERSID:
                persistentLoad();
                break;
            case PERSID:
            case INST:
            case OBJ:
            case NEWOBJ:
            case NEWOBJ_EX:
            case EXT1:
            case EXT2:
            case EXT4:
            case EMPTY_SET:
            case ADDITEMS:
            case FROZENSET:
            case NEXT_BUFFER:
            case READONLY_BUFFER:
            case FLOAT:
            case STRING:
            case UNICODE: {
                char buf[8];
                std::snprintf(buf, sizeof buf, "0x%02x", op);
                fail(std::string("pickle opcode ") + buf + " is not allowed in a state dict");
            }
            default: {
                char buf[8];
                std::snprintf(buf, sizeof buf, "0x%02x", op);
                fail(std::string("unknown pickle opcode ") + buf);
            }
            }
        }
    }

    int64_t parseDecimal(const std::string& s)
    {
        size_t i = 0;
        bool negative = false;
        if (i < s.size() && (s[i] == '-' || s[i] == '+'))
            negative = s[i++] == '-';
        if (i == s.size())
            fail("malformed integer '" + printable(s) + "'");
        uint64_t v = 0;
        for (; i < s.size(); ++i) {
            if (s[i] < '0' || s[i] > '9')
                fail("malformed integer '" + printable(s) + "'");
            if (v > (uint64_t(1) << 63) / 10)
                fail("integer '" + printable(s) + "' does not fit in 64 bits");
            v = v * 10 + static_cast<uint64_t>(s[i] - '0');
        }
        if (v > (negative ? uint64_t(1) << 63 : (uint64_t(1) << 63) - 1))
            fail("integer '" + printable(s) + "' does not fit in 64 bits");
        return negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
    }
    uint64_t parseUnsigned(const std::string& s)
    {
        int64_t v = parseDecimal(s);
        if (v < 0)
            fail("negative memo index");
        return static_cast<uint64_t>(v);
    }

    static constexpr size_t kMaxValues = size_t(1) << 22;
    static constexpr size_t kBaseBudget = size_t(64) << 20;
    static constexpr size_t kBudgetPerByte = 256; // one-byte opcodes make ~230-byte values

    const uint8_t* m_data;
    size_t m_size;
    std::string m_file;
    std::string m_entry;
    size_t m_pos = 0;
    size_t m_opPos = 0;
    size_t m_valueCount = 0;
    size_t m_budget = 0;
    size_t m_charged = 0;
    std::vector<PickleValuePtr> m_stack;
    std::vector<size_t> m_marks;
    std::unordered_map<uint64_t, PickleValuePtr> m_memo;
    std::vector<PickleValuePtr> m_containers;
    PickleValuePtr m_result;
};

PickleReader::PickleReader(const uint8_t* data, size_t size, std::string file, std::string entry)
    : m_impl(std::make_unique<Impl>(data, size, std::move(file), std::move(entry)))
{
}

PickleReader::~PickleReader() = default;

const PickleValue& PickleReader::load()
{
    return m_impl->load();
}

} // namespace statescope
