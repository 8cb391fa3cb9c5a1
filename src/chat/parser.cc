#include "chat/parser.h"

#include "chat/parser_impl.h"

namespace kvr::chat {
namespace internal {

absl::Status Parser::ParseBody(std::initializer_list<std::string_view> ends, Body* body,
                               std::string* end) {
  while (ok()) {
    const Token& t = Cur();
    if (t.type == Tok::kData) {
      auto s = NewStmt(StmtKind::kText, t.offset);
      s->text = t.text;
      body->push_back(std::move(s));
      Next();
    } else if (t.type == Tok::kVarBegin) {
      auto s = NewStmt(StmtKind::kPrint, t.offset);
      Next();
      s->exprs.push_back(ParseTuple(true, {}));
      Expect(Tok::kVarEnd, "'}}'");
      body->push_back(std::move(s));
    } else if (t.type == Tok::kBlockBegin) {
      Next();
      for (std::string_view e : ends) {
        if (IsName(e)) {
          *end = Cur().text;
          Next();
          return status_;
        }
      }
      ParseStatement(body);
    } else {  // kEof
      if (ends.size() > 0) {
        std::string want;
        for (std::string_view e : ends)
          want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
        Fail("unexpected end of template; expected " + want);
      }
      return status_;
    }
  }
  return status_;
}

void Parser::ParseStatement(Body* body) {
  uint32_t at = Cur().offset;
  if (Cur().type != Tok::kName) return Fail("tag name expected, got " + Describe());
  std::string tag = Cur().text;
  Next();
  StmtPtr s;
  if (tag == "if") {
    s = ParseIf(at);
  } else if (tag == "for") {
    s = ParseFor(at);
  } else if (tag == "set") {
    s = ParseSet(at);
  } else if (tag == "macro") {
    s = ParseMacro(at, false);
  } else if (tag == "call") {
    s = ParseMacro(at, true);
  } else if (tag == "filter") {
    s = ParseFilterBlock(at);
  } else if (tag == "break" || tag == "continue") {
    s = NewStmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, at);
    Expect(Tok::kBlockEnd, "end of statement block");
  } else if (tag == "generation") {
    s = NewStmt(StmtKind::kScope, at);
    Expect(Tok::kBlockEnd, "end of statement block");
    s->bodies.emplace_back();
    std::string end;
    ParseSub({"endgeneration"}, &s->bodies[0], &end);
    Expect(Tok::kBlockEnd, "end of statement block");
  } else if (tag == "raw") {
    return Fail("missing end of raw directive");
  } else {
    return FailAt("encountered unknown tag '" + tag + "'", at);
  }
  if (ok()) body->push_back(std::move(s));
}

StmtPtr Parser::ParseIf(uint32_t at) {
  auto s = NewStmt(StmtKind::kIf, at);
  bool was_soft = soft_;
  soft_ = true;
  while (ok()) {
    s->exprs.push_back(ParseTuple(true, {}));
    Expect(Tok::kBlockEnd, "end of statement block");
    s->bodies.emplace_back();
    std::string end;
    ParseSub({"elif", "else", "endif"}, &s->bodies.back(), &end);
    if (end == "elif") continue;
    s->bodies.emplace_back();
    if (end == "else") {
      Expect(Tok::kBlockEnd, "end of statement block");
      ParseSub({"endif"}, &s->bodies.back(), &end);
    }
    Expect(Tok::kBlockEnd, "end of statement block");
    break;
  }
  soft_ = was_soft;
  return s;
}

StmtPtr Parser::ParseFor(uint32_t at) {
  auto s = NewStmt(StmtKind::kFor, at);
  bool was_soft = soft_;
  soft_ = false;
  s->target = ParseTarget(false);
  if (!SkipName("in")) Fail("expected 'in', got " + Describe());
  s->exprs.push_back(ParseTuple(false, {"recursive"}));
  s->exprs.push_back(SkipName("if") ? ParseExpression() : nullptr);
  if (SkipName("recursive")) Fail("recursive loops are not supported");
  Expect(Tok::kBlockEnd, "end of statement block");
  s->bodies.resize(2);
  std::string end;
  ParseSub({"endfor", "else"}, &s->bodies[0], &end);
  if (end == "else") {
    Expect(Tok::kBlockEnd, "end of statement block");
    ParseSub({"endfor"}, &s->bodies[1], &end);
  }
  Expect(Tok::kBlockEnd, "end of statement block");
  soft_ = was_soft;
  return s;
}

Target Parser::ParseTarget(bool with_namespace) {
  Target t;
  std::string first = ExpectName();
  if (with_namespace && SkipOp(".")) {
    t.kind = Target::Kind::kNamespaceAttr;
    t.symbols.push_back(Symbol(first));
    t.attr = ExpectName();
    return t;
  }
  t.symbols.push_back(Symbol(first));
  while (SkipOp(",")) {
    t.kind = Target::Kind::kTuple;
    if (Cur().type != Tok::kName || IsName("in")) break;
    t.symbols.push_back(Symbol(ExpectName()));
  }
  return t;
}

StmtPtr Parser::ParseSet(uint32_t at) {
  Target target = ParseTarget(true);
  if (SkipOp("=")) {
    auto s = NewStmt(StmtKind::kSet, at);
    s->target = std::move(target);
    s->exprs.push_back(ParseTuple(true, {}));
    Expect(Tok::kBlockEnd, "end of statement block");
    return s;
  }
  auto s = NewStmt(StmtKind::kSetBlock, at);
  s->target = std::move(target);
  s->exprs.push_back(IsOp("|") ? ParseFilter(nullptr, false) : nullptr);
  Expect(Tok::kBlockEnd, "end of statement block");
  s->bodies.emplace_back();
  std::string end;
  ParseSub({"endset"}, &s->bodies[0], &end);
  Expect(Tok::kBlockEnd, "end of statement block");
  return s;
}

void Parser::ParseSignature(Stmt* s) {
  ExpectOp("(");
  bool have_default = false;
  while (ok() && !IsOp(")")) {
    if (!s->params.empty()) ExpectOp(",");
    if (IsOp(")")) break;
    s->params.push_back(Symbol(ExpectName()));
    if (SkipOp("=")) {
      s->exprs.push_back(ParseExpression());
      have_default = true;
    } else {
      if (have_default) Fail("non-default argument follows default argument");
      s->exprs.push_back(nullptr);
    }
  }
  ExpectOp(")");
}

StmtPtr Parser::ParseMacro(uint32_t at, bool is_call) {
  auto s = NewStmt(is_call ? StmtKind::kCallBlock : StmtKind::kMacro, at);
  bool was_soft = soft_;
  soft_ = false;
  s->exprs.push_back(nullptr);  // slot 0: the call expression of a call block
  if (is_call) {
    if (IsOp("(")) ParseSignature(s.get());
    s->exprs[0] = ParseExpression();
    if (ok() && s->exprs[0]->kind != ExprKind::kCall) FailAt("expected call", at);
  } else {
    s->name = ExpectName();
    s->symbol = Symbol(s->name);
    ParseSignature(s.get());
  }
  Expect(Tok::kBlockEnd, "end of statement block");
  s->bodies.emplace_back();
  std::string end;
  ParseSub({is_call ? "endcall" : "endmacro"}, &s->bodies[0], &end);
  Expect(Tok::kBlockEnd, "end of statement block");
  soft_ = was_soft;
  return s;
}

StmtPtr Parser::ParseFilterBlock(uint32_t at) {
  auto s = NewStmt(StmtKind::kFilterBlock, at);
  s->exprs.push_back(ParseFilter(nullptr, true));
  Expect(Tok::kBlockEnd, "end of statement block");
  s->bodies.emplace_back();
  std::string end;
  ParseSub({"endfilter"}, &s->bodies[0], &end);
  Expect(Tok::kBlockEnd, "end of statement block");
  return s;
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<Program>> ParseTemplate(std::string_view source) {
  KVR_ASSIGN_OR_RETURN(LexResult lex, Lex(source));
  auto prog = std::make_unique<Program>();
  KVR_RETURN_IF_ERROR(internal::Parser(std::move(lex), prog.get()).Run());
  return prog;
}

}  // namespace kvr::chat
