// The compiled form of a template: an immutable tree of statements and expressions, plus the
// symbol table that maps every name used in it to a small integer. Names are resolved to
// symbols once at compile time so that variable lookup at render time compares integers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "chat/value.h"

namespace kvr::chat {

enum class ExprKind : uint8_t {
  kLiteral,
  kName,
  kList,
  kTuple,
  kDict,
  kAttr,
  kItem,
  kSlice,
  kCall,
  kFilter,
  kTest,
  kNot,
  kNeg,
  kPos,
  kBinary,
  kCompare,
  kAnd,
  kOr,
  kCond,
};
enum class BinOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow, kConcat };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind;
  uint32_t offset = 0;   // source offset, for error positions
  Value literal;         // kLiteral
  std::string name;      // kName variable, kAttr attribute, kFilter/kTest name
  int symbol = -1;       // kName
  int builtin = -1;      // kFilter/kTest: index into the builtin table; -1 if unknown
  bool negated = false;  // kTest: `is not`
  BinOp bin = BinOp::kAdd;
  std::vector<CmpOp> cmp_ops;  // kCompare: args[i] op[i] args[i+1]
  // Operands. kAttr/kItem: object (+ key); kSlice: object, start, stop, step (null if absent);
  // kCall: callee then positional args; kFilter/kTest: subject then args (subject null in a
  // filter block); kDict: alternating key, value; kCond: then, condition, else (may be null).
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

enum class StmtKind : uint8_t {
  kText,
  kPrint,
  kIf,
  kFor,
  kSet,
  kSetBlock,
  kMacro,
  kCallBlock,
  kFilterBlock,
  kBreak,
  kContinue,
  kScope,  // a plain body ({% generation %})
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Assignment target: a name, a tuple of names, or `ns.attr`.
struct Target {
  enum class Kind : uint8_t { kName, kTuple, kNamespaceAttr } kind = Kind::kName;
  std::vector<int> symbols;
  std::string attr;
};

struct Stmt {
  StmtKind kind;
  uint32_t offset = 0;
  std::string text;  // kText
  // kPrint: [expr]; kIf: one condition per branch; kFor: [iterable, filter or null];
  // kSet: [value]; kSetBlock/kFilterBlock: [filter chain or null]; kCallBlock: [call];
  // kMacro/kCallBlock: parameter defaults (null where none) after the first slot.
  std::vector<ExprPtr> exprs;
  // kIf: one body per condition, then the else body; kFor: body, else body; others: body.
  std::vector<Body> bodies;
  Target target;            // kFor, kSet, kSetBlock
  int symbol = -1;          // kMacro: its name
  std::vector<int> params;  // kMacro, kCallBlock
  std::string name;         // kMacro: for repr and errors
};

// Symbols every render needs by number.
struct WellKnownSymbols {
  int loop, caller, varargs, kwargs;
};

struct Program {
  std::string source;  // newline-normalized source, for error positions
  Body body;
  std::vector<std::string> symbols;
  absl::flat_hash_map<std::string, int> symbol_ids;
  std::vector<int> global_of_symbol;  // builtin global index per symbol, or -1
  WellKnownSymbols well_known;
};

}  // namespace kvr::chat
