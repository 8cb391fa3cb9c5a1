// Deterministic generator of the tokenizer exactness corpus (used by make_corpus.js).
// Every string is built from a seeded PRNG and hand-written fragments: all major scripts,
// emoji families, whitespace runs, numbers, code, special-token strings inside text, Unicode
// edge cases, and a few 100 KB+ inputs.
'use strict';

function rng(seed) {  // mulberry32
  return function () {
    seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SCRIPTS = [
  'The quick brown fox jumps over the lazy dog. Ünïcödé façade, naïve café, Øresund, Łódź.',
  'Съешь же ещё этих мягких французских булок, да выпей чаю.',
  'Τάχιστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός.',
  'صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت يَحظى الضَجيعُ بِها',
  'דג סקרן שט בים מאוכזב ולפתע מצא חברה',
  'ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले',
  'আমি বাংলায় গান গাই। তোমার সাথে দেখা হবে।',
  'யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது எங்கும் காணோம்',
  'เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน',
  'ພາສາລາວ ເປັນພາສາທີ່ສວຍງາມ',
  'ខ្ញុំអាចញ៉ាំកញ្ចក់បាន ដោយគ្មានបញ្ហា',
  'မြန်မာဘာသာစကား ကို လေ့လာပါ',
  'ქართული ენა ძალიან ლამაზია',
  'Հայերենը գեղեցիկ լեզու է',
  'ሰማይ አይታረስ ንጉሥ አይከሰስ።',
  '키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다.',
  'いろはにほへと ちりぬるを わかよたれそ つねならむ カタカナ ﾊﾝｶｸ',
  '我能吞下玻璃而不伤身体。天地玄黄，宇宙洪荒。龍與鳳',
  'བོད་ཀྱི་སྐད་ཡིག་ནི་',
  'ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ',
  'ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ',
  'සිංහල භාෂාව ලස්සනයි',
  'ગુજરાતી ભાષા  తెలుగు భాష  ಕನ್ನಡ ಭಾಷೆ  മലയാളം ഭാഷ  ਪੰਜਾਬੀ ਭਾਸ਼ਾ',
  'Tiếng Việt có dấu: Đường phố Hà Nội rất đông người.',
  'Türkçe: Ğğ İı Şş — Azərbaycan dili; Čeština: Příliš žluťoučký kůň',
  'ᚠᛇᚻ᛫ᛒᛦᚦ ᛗᛖᚱᚪ — 𐌰𐌱𐌲 Gothic — 𓀀𓀁 hieroglyphs — ꦗꦮ Javanese',
];

const EMOJI = [
  '😀😃😄😁😆😅🤣😂', '👍👍🏻👍🏼👍🏽👍🏾👍🏿', '👨‍👩‍👧‍👦 👩‍❤️‍💋‍👨 🧑‍🤝‍🧑 👨🏽‍💻',
  '🇯🇵🇺🇸🇫🇷🇩🇪🇧🇷 🏴󠁧󠁢󠁳󠁣󠁴󠁿 🏳️‍🌈 🏴‍☠️', '1️⃣2️⃣#️⃣*️⃣ ☺︎☺️ ❤️ ♥', '🤖🧠💾🦀🐍 🫠🫶🪿',
];

const WS = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '\r', '\u00a0', '\u3000', '\u2009',
  '\u200b', '\u2028', '\u0085', '\u000b', '\u000c', ' \n ', '\t\t\n', '    '];

const CODE = [
  'def f(x):\n    return x ** 2  # square\n\nprint(f(10))\n',
  '#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v.size() > 2 ? 0 : 1;\n}\n',
  'const x = async (a, b) => { await fetch(`/api/${a}?b=${b}`); };\n',
  'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%son\' ORDER BY id DESC;',
  '{"key": [1, 2.5, -3e10, true, null], "nested": {"a": "b\\n"}}',
  '<div class="x"><a href="https://example.com/?q=1&r=2">link</a></div>',
  'fn main() -> Result<(), Box<dyn Error>> { let v: Vec<_> = (0..10).collect(); Ok(()) }',
  '    if (a&&b||!c) { x+=1; y<<=2; z->w = *p++; }',
  '# Title\n\n- item **bold** _it_ `code`\n1. one\n\n```bash\nls -la | grep foo\n```\n',
  '$ echo "$HOME" && cd ~/src; make -j8 2>&1 | tee log.txt',
];

const NUMBERS = ['0', '7', '42', '123', '1234', '12345', '123456789012345678901234567890',
  '3.14159', '1,000,000', '-0.5e-10', '１２３４５', '٠١٢٣٤٥٦٧٨٩', '०१२३', '²³¹', '½¼¾',
  'ⅫⅣ', '2024-11-27T10:00:00Z', '+1 (555) 123-4567', '0xDEADBEEF', '১২৩'];

const EDGE = ['', ' ', 'a', '\u0000', '\u0001\u0002\u001f', '\ufeffBOM', '\ufffd', '\uffff',
  '\u{10ffff}', '\ue000private', 'e\u0301 vs \u00e9', 'A\u030a\u0328', '\u1100\u1161\u11a8',
  'ﬁﬂ ﬀ', '\u2126 \u212b \u00c5', '\uf900\uf901\ufa00', 'ᾮ ﬡ ㍿', "I'LL WE'VE you're it's DON'T",
  "'s 't 're 've 'm 'll 'd", 'a'.repeat(3000), '.'.repeat(500), '!!!???...', '—–-‐', '«»„“”‘’',
  'x\u200dy\u200cz', '\u0600\u0601 \u202e reversed \u202c', 'Σ ΣΑΣ σς', 'İstanbul ǅ ǈ',
  '▁ ▁▁ hello▁world', 'Ġ Ċ ĉ', '<0x0A> <unk>', 'tab\tsep\tvalues\n', '   leading', 'trailing   '];

const SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>',
  '<|end_header_id|>', '<|reserved_special_token_5|>', '<|im_start|>', '<|im_end|>',
  '<|endoftext|>', '<think>', '</think>', '<tool_call>', '<|fim_prefix|>', '<s>', '</s>',
  '<unk>', '[INST]', '[/INST]', '<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>', '<pad>',
  '<mask>', '<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>',
  '<｜fim▁hole｜>', '<|begin_of_text', 'begin_of_text|>', '<||>', '<|im_start|', '<s', '</s'];

function pick(r, arr) { return arr[Math.floor(r() * arr.length)]; }

// Random code points from a few blocks, to cover \p{L}/\p{N}/\p{P}/\p{S}/\p{M} broadly.
const BLOCKS = [[0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff],
  [0x590, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f],
  [0x2190, 0x23ff], [0x2460, 0x24ff], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
  [0xf900, 0xfaff], [0xfe30, 0xfe4f], [0xff00, 0xffef], [0x1d400, 0x1d7ff], [0x1f300, 0x1faff],
  [0x20000, 0x2a6df]];

function randomChars(r, n) {
  let s = '';
  for (let i = 0; i < n; ++i) {
    const [lo, hi] = pick(r, BLOCKS);
    s += String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
  }
  return s;
}

function fragment(r) {
  switch (Math.floor(r() * 8)) {
    case 0: return pick(r, SCRIPTS);
    case 1: return pick(r, EMOJI);
    case 2: return pick(r, WS).repeat(1 + Math.floor(r() * 4));
    case 3: return pick(r, CODE);
    case 4: return pick(r, NUMBERS);
    case 5: return pick(r, EDGE);
    case 6: return pick(r, SPECIALS);
    default: return randomChars(r, 1 + Math.floor(r() * 12));
  }
}

function mix(r, n) {
  let s = '';
  for (let i = 0; i < n; ++i) s += fragment(r) + (r() < 0.5 ? pick(r, WS) : '');
  return s;
}

function corpusTexts() {
  const r = rng(20261127);
  const out = [];
  for (const list of [SCRIPTS, EMOJI, CODE, NUMBERS, EDGE, SPECIALS]) out.push(...list);
  for (const w of WS) {
    out.push(w, 'a' + w + 'b', w + 'word' + w, 'x' + w.repeat(7) + 'y', w.repeat(33));
  }
  for (const s of SPECIALS) out.push('text' + s + 'glued', ' ' + s + ' spaced ', s + s + '\n' + s);
  for (let n = 1; n <= 24; ++n) out.push('9'.repeat(n), 'v' + '1234567890'.slice(0, n % 11) + 'x');
  for (let i = 0; i < 200; ++i) out.push(mix(r, 1 + Math.floor(r() * 12)));
  for (let i = 0; i < 40; ++i) out.push(randomChars(r, 5 + Math.floor(r() * 60)));
  // Long inputs: mixed text, one 100 KB word (no spaces), and a whitespace-heavy one.
  let long = '';
  while (long.length < 120000) long += mix(r, 20);
  out.push(long);
  let word = '';
  while (word.length < 100000) word += pick(r, ['abc', 'xyz', 'の', 'щ', '9', 'é', 'ab']);
  out.push(word);
  let spaces = '';
  while (spaces.length < 100000) spaces += pick(r, WS).repeat(1 + Math.floor(r() * 40)) + pick(r, ['a', '1', '.', '字']);
  out.push(spaces);
  return out;
}

module.exports = { corpusTexts };
