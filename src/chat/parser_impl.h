// Private to the parser: the Parser class, shared by parser.cc (statements) and
// parser_expr.cc (expressions).
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "chat/ast.h"
#include "chat/builtins.h"
#include "chat/lexer.h"
#include "chat/parser.h"

namespace kvr::chat::internal {

class Parser {
 public:
  Parser(LexResult lex, Program* prog) : toks_(std::move(lex.tokens)), prog_(prog) {
    prog_->source = std::move(lex.source);
    prog_->well_known = {Symbol("loop"), Symbol("caller"), Symbol("varargs"), Symbol("kwargs")};
  }

  absl::Status Run() {
    std::string end;
    KVR_RETURN_IF_ERROR(ParseBody({}, &prog_->body, &end));
    if (!unknown_.empty()) {  // Jinja2 rejects unknown filters/tests outside if at compile time
      FailAt("no " + std::string(unknown_[0].kind) + " named '" + unknown_[0].name + "'",
             unknown_[0].offset);
    }
    return status_;
  }

 private:
  // ---- token helpers ----
  const Token& Cur() const { return toks_[pos_]; }
  void Next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool IsOp(std::string_view op) const { return Cur().type == Tok::kOp && Cur().text == op; }
  bool IsName(std::string_view n) const { return Cur().type == Tok::kName && Cur().text == n; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view n) {
    if (!IsName(n)) return false;
    Next();
    return true;
  }

  // The first error wins; parsing then unwinds quickly because every token test fails at kEof.
  void Fail(const std::string& msg) { FailAt(msg, Cur().offset); }
  void FailAt(const std::string& msg, uint32_t offset) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError("template syntax error at " +
                                           DescribePosition(prog_->source, offset) + ": " + msg);
    }
    pos_ = toks_.size() - 1;
  }
  bool ok() const { return status_.ok(); }
  std::string Describe() const {
    switch (Cur().type) {
      case Tok::kEof:
        return "end of template";
      case Tok::kBlockEnd:
        return "end of statement block";
      case Tok::kVarEnd:
        return "end of print statement";
      case Tok::kData:
        return "template data";
      default:
        return "'" + Cur().text + "'";
    }
  }
  void ExpectOp(std::string_view op) {
    if (!SkipOp(op)) Fail("expected '" + std::string(op) + "', got " + Describe());
  }
  void Expect(Tok t, const char* what) {
    if (Cur().type != t) return Fail(std::string("expected ") + what + ", got " + Describe());
    Next();
  }
  std::string ExpectName() {
    if (Cur().type != Tok::kName) {
      Fail("expected a name, got " + Describe());
      return "";
    }
    std::string n = Cur().text;
    Next();
    return n;
  }

  int Symbol(const std::string& name) {
    auto [it, inserted] = prog_->symbol_ids.try_emplace(name, prog_->symbols.size());
    if (inserted) {
      prog_->symbols.push_back(name);
      prog_->global_of_symbol.push_back(FindGlobal(name));
    }
    return it->second;
  }

  ExprPtr NewExpr(ExprKind k, uint32_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->offset = offset;
    return e;
  }
  StmtPtr NewStmt(StmtKind k, uint32_t offset) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->offset = offset;
    return s;
  }

  struct DepthGuard {
    explicit DepthGuard(Parser* parser) : p(parser) {
      if (++p->depth_ > kMaxParseDepth) p->Fail("template nested too deeply");
    }
    ~DepthGuard() { --p->depth_; }
    Parser* p;
  };

  // ---- statements ----
  absl::Status ParseBody(std::initializer_list<std::string_view> ends, Body* body,
                         std::string* end);
  void ParseStatement(Body* body);
  StmtPtr ParseIf(uint32_t at);
  StmtPtr ParseFor(uint32_t at);
  StmtPtr ParseSet(uint32_t at);
  StmtPtr ParseMacro(uint32_t at, bool is_call);
  StmtPtr ParseFilterBlock(uint32_t at);
  void ParseSignature(Stmt* s);
  Target ParseTarget(bool with_namespace);
  void ParseSub(std::initializer_list<std::string_view> ends, Body* body, std::string* end) {
    DepthGuard g(this);
    if (ok()) (void)ParseBody(ends, body, end);
  }

  // ---- expressions ----
  ExprPtr ParseTuple(bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                     bool explicit_parens = false);
  ExprPtr ParseExpression(bool with_condexpr = true) {
    DepthGuard g(this);
    if (!ok()) return NewExpr(ExprKind::kLiteral, Cur().offset);
    return with_condexpr ? ParseCondExpr() : ParseOr();
  }
  ExprPtr ParseCondExpr();
  ExprPtr ParseOr();
  ExprPtr ParseAnd();
  ExprPtr ParseNot();
  ExprPtr ParseCompare();
  ExprPtr ParseBinary(int level);
  ExprPtr ParseUnary(bool with_filter);
  ExprPtr ParsePrimary();
  ExprPtr ParsePostfix(ExprPtr node);
  ExprPtr ParseFilterExpr(ExprPtr node);
  ExprPtr ParseSubscript(ExprPtr node);
  ExprPtr ParseSubscribed();
  ExprPtr ParseFilter(ExprPtr node, bool start_inline);
  ExprPtr ParseTest(ExprPtr node);
  void ParseCallArgs(Expr* call);
  ExprPtr ParseSequenceLiteral(bool is_dict);

  std::vector<Token> toks_;
  size_t pos_ = 0;
  Program* prog_;
  absl::Status status_;
  int depth_ = 0;
  bool soft_ = false;  // inside an if/condexpr: unknown filters fail only when called
  struct Unknown {
    const char* kind;
    std::string name;
    uint32_t offset;
  };
  std::vector<Unknown> unknown_;
};

}  // namespace kvr::chat::internal
