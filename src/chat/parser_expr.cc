// Expression half of the parser; precedence as in jinja2/parser.py.
#include "chat/parser_impl.h"

namespace kvr::chat::internal {

ExprPtr Parser::ParseTuple(bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                           bool explicit_parens) {
  uint32_t at = Cur().offset;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  auto at_end = [&] {
    if (Cur().type == Tok::kVarEnd || Cur().type == Tok::kBlockEnd || Cur().type == Tok::kEof ||
        IsOp(")")) {
      return true;
    }
    for (std::string_view e : extra_end) {
      if (IsName(e)) return true;
    }
    return false;
  };
  while (ok()) {
    if (!items.empty()) ExpectOp(",");
    if (at_end()) break;
    items.push_back(ParseExpression(with_condexpr));
    if (IsOp(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) Fail("expected an expression, got " + Describe());
  }
  auto t = NewExpr(ExprKind::kTuple, at);
  t->args = std::move(items);
  return t;
}

ExprPtr Parser::ParseCondExpr() {
  size_t unknown_mark = unknown_.size();
  ExprPtr expr = ParseOr();
  while (ok() && SkipName("if")) {
    auto c = NewExpr(ExprKind::kCond, expr->offset);
    c->args.push_back(std::move(expr));
    c->args.push_back(ParseOr());
    c->args.push_back(SkipName("else") ? ParseCondExpr() : nullptr);
    // Jinja2 compiles a conditional expression in a soft frame: unknown filters inside it
    // fail only if evaluated.
    unknown_.resize(unknown_mark);
    expr = std::move(c);
  }
  return expr;
}

ExprPtr Parser::ParseOr() {
  ExprPtr left = ParseAnd();
  while (ok() && IsName("or")) {
    auto e = NewExpr(ExprKind::kOr, Cur().offset);
    Next();
    e->args.push_back(std::move(left));
    e->args.push_back(ParseAnd());
    left = std::move(e);
  }
  return left;
}

ExprPtr Parser::ParseAnd() {
  ExprPtr left = ParseNot();
  while (ok() && IsName("and")) {
    auto e = NewExpr(ExprKind::kAnd, Cur().offset);
    Next();
    e->args.push_back(std::move(left));
    e->args.push_back(ParseNot());
    left = std::move(e);
  }
  return left;
}

ExprPtr Parser::ParseNot() {
  if (IsName("not")) {
    DepthGuard g(this);
    auto e = NewExpr(ExprKind::kNot, Cur().offset);
    Next();
    e->args.push_back(ok() ? ParseNot() : NewExpr(ExprKind::kLiteral, Cur().offset));
    return e;
  }
  return ParseCompare();
}

ExprPtr Parser::ParseCompare() {
  ExprPtr first = ParseBinary(0);
  ExprPtr cmp;
  while (ok()) {
    CmpOp op;
    const std::string& t = Cur().text;
    if (Cur().type == Tok::kOp &&
        (t == "==" || t == "!=" || t == "<" || t == "<=" || t == ">" || t == ">=")) {
      op = t == "=="   ? CmpOp::kEq
           : t == "!=" ? CmpOp::kNe
           : t == "<"  ? CmpOp::kLt
           : t == "<=" ? CmpOp::kLe
           : t == ">"  ? CmpOp::kGt
                       : CmpOp::kGe;
      Next();
    } else if (IsName("in")) {
      op = CmpOp::kIn;
      Next();
    } else if (IsName("not") && pos_ + 1 < toks_.size() && toks_[pos_ + 1].type == Tok::kName &&
               toks_[pos_ + 1].text == "in") {
      op = CmpOp::kNotIn;
      Next();
      Next();
    } else {
      break;
    }
    if (!cmp) {
      cmp = NewExpr(ExprKind::kCompare, first->offset);
      cmp->args.push_back(std::move(first));
    }
    cmp->cmp_ops.push_back(op);
    cmp->args.push_back(ParseBinary(0));
  }
  return cmp ? std::move(cmp) : std::move(first);
}

// Levels: 0 `+ -`, 1 `~`, 2 `* / // %`, 3 `**`, then unary.
ExprPtr Parser::ParseBinary(int level) {
  if (level == 4) return ParseUnary(true);
  ExprPtr left = ParseBinary(level + 1);
  while (ok() && Cur().type == Tok::kOp) {
    const std::string& t = Cur().text;
    BinOp op;
    if (level == 0 && (t == "+" || t == "-")) {
      op = t == "+" ? BinOp::kAdd : BinOp::kSub;
    } else if (level == 1 && t == "~") {
      op = BinOp::kConcat;
    } else if (level == 2 && (t == "*" || t == "/" || t == "//" || t == "%")) {
      op = t == "*"    ? BinOp::kMul
           : t == "/"  ? BinOp::kDiv
           : t == "//" ? BinOp::kFloorDiv
                       : BinOp::kMod;
    } else if (level == 3 && t == "**") {
      op = BinOp::kPow;
    } else {
      break;
    }
    auto e = NewExpr(ExprKind::kBinary, Cur().offset);
    Next();
    e->bin = op;
    e->args.push_back(std::move(left));
    e->args.push_back(ParseBinary(level + 1));
    left = std::move(e);
  }
  return left;
}

ExprPtr Parser::ParseUnary(bool with_filter) {
  DepthGuard g(this);
  ExprPtr node;
  if (!ok()) return NewExpr(ExprKind::kLiteral, Cur().offset);
  if (IsOp("-") || IsOp("+")) {
    node = NewExpr(IsOp("-") ? ExprKind::kNeg : ExprKind::kPos, Cur().offset);
    Next();
    node->args.push_back(ParseUnary(false));
  } else {
    node = ParsePrimary();
  }
  node = ParsePostfix(std::move(node));
  if (with_filter) node = ParseFilterExpr(std::move(node));
  return node;
}

ExprPtr Parser::ParsePrimary() {
  const Token& t = Cur();
  auto e = NewExpr(ExprKind::kLiteral, t.offset);
  switch (t.type) {
    case Tok::kName:
      if (t.text == "true" || t.text == "True") {
        e->literal = Value(true);
      } else if (t.text == "false" || t.text == "False") {
        e->literal = Value(false);
      } else if (t.text == "none" || t.text == "None") {
        e->literal = Value::None();
      } else {
        e->kind = ExprKind::kName;
        e->name = t.text;
        e->symbol = Symbol(t.text);
      }
      Next();
      return e;
    case Tok::kString: {
      std::string s;
      while (Cur().type == Tok::kString) {  // adjacent literals concatenate
        s += Cur().text;
        Next();
      }
      e->literal = Value(std::move(s));
      return e;
    }
    case Tok::kInt:
      e->literal = Value(t.int_value);
      Next();
      return e;
    case Tok::kFloat:
      e->literal = Value(t.float_value);
      Next();
      return e;
    default:
      break;
  }
  if (SkipOp("(")) {
    ExprPtr inner = ParseTuple(true, {}, true);
    ExpectOp(")");
    return inner;
  }
  if (SkipOp("[")) return ParseSequenceLiteral(false);
  if (SkipOp("{")) return ParseSequenceLiteral(true);
  Fail("unexpected " + Describe());
  return e;
}

ExprPtr Parser::ParseSequenceLiteral(bool is_dict) {
  auto e = NewExpr(is_dict ? ExprKind::kDict : ExprKind::kList, Cur().offset);
  const char* close = is_dict ? "}" : "]";
  while (ok() && !IsOp(close)) {
    if (!e->args.empty()) ExpectOp(",");
    if (IsOp(close)) break;
    e->args.push_back(ParseExpression());
    if (is_dict) {
      ExpectOp(":");
      e->args.push_back(ParseExpression());
    }
  }
  ExpectOp(close);
  return e;
}

ExprPtr Parser::ParsePostfix(ExprPtr node) {
  while (ok()) {
    if (IsOp(".") || IsOp("[")) {
      node = ParseSubscript(std::move(node));
    } else if (IsOp("(")) {
      auto call = NewExpr(ExprKind::kCall, Cur().offset);
      call->args.push_back(std::move(node));
      ParseCallArgs(call.get());
      node = std::move(call);
    } else {
      break;
    }
  }
  return node;
}

ExprPtr Parser::ParseFilterExpr(ExprPtr node) {
  while (ok()) {
    if (IsOp("|")) {
      node = ParseFilter(std::move(node), false);
    } else if (IsName("is")) {
      node = ParseTest(std::move(node));
    } else if (IsOp("(")) {
      auto call = NewExpr(ExprKind::kCall, Cur().offset);
      call->args.push_back(std::move(node));
      ParseCallArgs(call.get());
      node = std::move(call);
    } else {
      break;
    }
  }
  return node;
}

ExprPtr Parser::ParseSubscript(ExprPtr node) {
  uint32_t at = Cur().offset;
  if (SkipOp(".")) {
    if (Cur().type == Tok::kInt) {
      auto e = NewExpr(ExprKind::kItem, at);
      auto key = NewExpr(ExprKind::kLiteral, at);
      key->literal = Value(Cur().int_value);
      Next();
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(key));
      return e;
    }
    auto e = NewExpr(ExprKind::kAttr, at);
    e->name = ExpectName();
    e->args.push_back(std::move(node));
    return e;
  }
  ExpectOp("[");
  std::vector<ExprPtr> keys;
  while (ok() && !IsOp("]")) {
    if (!keys.empty()) ExpectOp(",");
    if (IsOp("]")) break;
    keys.push_back(ParseSubscribed());
  }
  ExpectOp("]");
  if (keys.empty()) {
    Fail("expected subscript expression");
    return node;
  }
  ExprPtr key;
  if (keys.size() == 1) {
    key = std::move(keys[0]);
  } else {
    // Python builds a tuple of slice objects here, which no list, string or dict accepts as a
    // key; the slice nodes' object slot is filled only for a lone slice.
    for (const ExprPtr& k : keys) {
      if (k && k->kind == ExprKind::kSlice) {
        Fail("slices in a tuple subscript are not supported");
        return node;
      }
    }
    key = NewExpr(ExprKind::kTuple, at);
    key->args = std::move(keys);
  }
  if (key->kind == ExprKind::kSlice) {  // fill in the sliced object
    key->args[0] = std::move(node);
    return key;
  }
  auto e = NewExpr(ExprKind::kItem, at);
  e->args.push_back(std::move(node));
  e->args.push_back(std::move(key));
  return e;
}

// One subscript: an expression or a slice `a:b:c` (returned with a null object slot).
ExprPtr Parser::ParseSubscribed() {
  uint32_t at = Cur().offset;
  ExprPtr start;
  if (!IsOp(":")) {
    start = ParseExpression();
    if (!IsOp(":")) return start;
  }
  Next();  // ':'
  auto s = NewExpr(ExprKind::kSlice, at);
  s->args.resize(4);
  s->args[1] = std::move(start);
  if (!IsOp("]") && !IsOp(",") && !IsOp(":")) s->args[2] = ParseExpression();
  if (SkipOp(":") && !IsOp("]") && !IsOp(",")) s->args[3] = ParseExpression();
  return s;
}

void Parser::ParseCallArgs(Expr* call) {
  ExpectOp("(");
  size_t count = 0;
  while (ok() && !IsOp(")")) {
    if (count++ > 0) ExpectOp(",");
    if (IsOp(")")) break;
    if (IsOp("*") || IsOp("**")) return Fail("*args and **kwargs in calls are not supported");
    if (Cur().type == Tok::kName && pos_ + 1 < toks_.size() && toks_[pos_ + 1].type == Tok::kOp &&
        toks_[pos_ + 1].text == "=") {
      std::string key = Cur().text;
      Next();
      Next();
      call->kwargs.emplace_back(std::move(key), ParseExpression());
    } else {
      if (!call->kwargs.empty()) return Fail("invalid syntax for function call expression");
      call->args.push_back(ParseExpression());
    }
  }
  ExpectOp(")");
}

ExprPtr Parser::ParseFilter(ExprPtr node, bool start_inline) {
  while (ok() && (start_inline || IsOp("|"))) {
    if (!start_inline) Next();
    start_inline = false;
    auto f = NewExpr(ExprKind::kFilter, Cur().offset);
    f->name = ExpectName();
    while (SkipOp(".")) f->name.append(1, '.').append(ExpectName());
    f->builtin = FindFilter(f->name);
    if (f->builtin < 0 && !soft_) unknown_.push_back({"filter", f->name, f->offset});
    f->args.push_back(std::move(node));
    if (IsOp("(")) ParseCallArgs(f.get());
    node = std::move(f);
  }
  return node;
}

ExprPtr Parser::ParseTest(ExprPtr node) {
  auto t = NewExpr(ExprKind::kTest, Cur().offset);
  Next();  // 'is'
  t->negated = SkipName("not");
  t->name = ExpectName();
  while (SkipOp(".")) t->name.append(1, '.').append(ExpectName());
  t->builtin = FindTest(t->name);
  if (t->builtin < 0 && !soft_) unknown_.push_back({"test", t->name, t->offset});
  t->args.push_back(std::move(node));
  Tok ty = Cur().type;
  if (IsOp("(")) {
    ParseCallArgs(t.get());
  } else if ((ty == Tok::kName || ty == Tok::kString || ty == Tok::kInt || ty == Tok::kFloat ||
              IsOp("(") || IsOp("[") || IsOp("{")) &&
             !IsName("else") && !IsName("or") && !IsName("and")) {
    if (IsName("is")) {
      Fail("You cannot chain multiple tests with is");
      return t;
    }
    t->args.push_back(ParsePostfix(ParsePrimary()));
  }
  return t;
}

}  // namespace kvr::chat::internal
