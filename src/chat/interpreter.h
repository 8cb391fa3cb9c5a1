// Tree-walking evaluation of a Program for one render. An Interp lives for one render call on
// one thread; the Program it reads is immutable and shared.
//
// Errors are sticky: the first one is recorded and every evaluation after it returns at once
// (this keeps the hot path free of StatusOr plumbing; Render turns it into a Status).
// Resources are bounded: every statement and expression costs a step, bulk operations cost
// their size, output and string/list sizes are capped, and macro recursion is limited.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "chat/builtins.h"
#include "chat/value.h"
#include "common/status.h"

namespace kvr::chat {

// Deepest value a template may store (Python's default recursion limit is 1000 as well).
constexpr int kMaxValueDepth = 1000;

struct RenderLimits {
  int64_t max_steps = 20'000'000;
  size_t max_output_bytes = 16u << 20;
  int max_call_depth = 100;
};

// A variable frame. Frames form a chain; for loops and macro calls push one, as Jinja2 scopes
// `set` to the innermost loop or macro. Shared because a macro keeps its defining frame.
struct Scope {
  explicit Scope(std::shared_ptr<Scope> p) : parent(std::move(p)) {}
  const Value* Find(int symbol) const;
  void Set(int symbol, Value v);
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<int, Value>> vars;
};

class Interp {
 public:
  Interp(const Program& prog, const RenderLimits& limits, const std::tm& now);
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  // Renders with `context` bound as the top-level variables.
  absl::Status Render(const Dict& context, std::string* out);

  // ---- for builtins and host objects ----
  // Records an error (the first one wins). `raised` marks raise_exception's message.
  void Fail(std::string msg, bool raised = false);
  // Fail, then the undefined value an evaluation returns once it has failed.
  Value Error(std::string msg) {
    Fail(std::move(msg));
    return Value();
  }
  bool failed() const { return failed_; }
  // Charges `units` steps of work; false (and failed) once the budget is spent.
  bool Charge(size_t units) {
    steps_ += static_cast<int64_t>(units);
    return steps_ <= limits_.max_steps ? !failed_ : ChargeExceeded();
  }
  // Namespaces and macro frames can form reference cycles (a frame holds a macro that holds
  // the frame; `ns.me = ns`); they are registered here and emptied when the render ends.
  void TrackForCleanup(const Value& ns) { namespaces_.push_back(ns); }
  // Fails unless a value of `bytes` bytes / elements fits the size cap.
  bool CheckSize(size_t n);
  size_t max_size() const { return limits_.max_output_bytes; }
  const std::tm& now() const { return now_; }
  Value CallValue(const Value& callee, const Args& args);
  Value ApplyFilter(std::string_view name, const Value& v, const Args& args);
  bool ApplyTest(std::string_view name, const Value& v, const Args& args);
  // Python getattr-then-getitem (`x.y`) and getitem-then-getattr (`x[y]`) as Jinja2 does.
  Value GetAttr(const Value& obj, const std::string& name);
  Value GetItem(const Value& obj, const Value& key);

  // Runs a macro or call-block body in a fresh frame; used by MacroObject.
  Value CallMacro(const Stmt& macro, const std::shared_ptr<Scope>& closure, const Args& args,
                  const Value* caller);

 private:
  bool ChargeExceeded();
  void ReleaseCycles();
  void Exec(const Body& body);
  void ExecStmt(const Stmt& s);
  void ExecFor(const Stmt& s);
  void ExecCallBlock(const Stmt& s);
  void Assign(const Target& t, Value v);
  std::string Capture(const Body& body);
  Value Eval(const Expr& e);
  Value EvalName(const Expr& e);
  Value EvalCall(const Expr& e);
  Value EvalFilter(const Expr& e);
  Value EvalBinary(const Expr& e);
  Value EvalCompare(const Expr& e);
  Value EvalSlice(const Expr& e);
  bool EvalArgs(const Expr& e, Args* args);
  bool Iterate(const Value& v, std::vector<Value>* items, const List** shared);
  void Emit(const Value& v);
  void FailAt(const Expr& e, std::string msg);
  Value ErrorAt(const Expr& e, std::string msg) {
    FailAt(e, std::move(msg));
    return Value();
  }

  const Program& prog_;
  RenderLimits limits_;
  std::tm now_;
  std::string* out_ = nullptr;
  std::shared_ptr<Scope> scope_;
  enum class Flow : uint8_t { kNormal, kBreak, kContinue } flow_ = Flow::kNormal;
  const Value* filter_input_ = nullptr;  // the body text of a filter block / set block
  bool failed_ = false;
  bool raised_ = false;
  std::string error_;
  uint32_t error_offset_ = 0;
  bool error_positioned_ = false;
  int64_t steps_ = 0;
  int depth_ = 0;
  std::vector<std::shared_ptr<Scope>> closure_scopes_;
  std::vector<Value> namespaces_;
};

// Python's a + b, a * b, ... for the binary operators, with errors through `in`.
Value PyBinary(Interp& in, BinOp op, const Value& a, const Value& b);
// Python's `item in container`.
bool PyContains(Interp& in, const Value& container, const Value& item);

}  // namespace kvr::chat
