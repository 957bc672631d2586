/**
 * Source scanning for test/architecture.test.ts: a small lexer that knows comments, strings,
 * template literals (with nested `${...}`) and regex literals, so that a `fm.` in a doc
 * comment, an `import` inside a string or a quote inside a regex does not confuse the rules.
 */

export interface StringLiteral {
  /** The literal's text without its quotes; template literals keep their `${...}` parts verbatim. */
  value: string;
  quote: '"' | "'" | "`";
  line: number;
  /** Whether the literal sits inside another template literal's `${...}`. */
  nested: boolean;
}

export interface Scanned {
  /** Comments and string contents replaced by spaces, line breaks kept: code patterns only. */
  codeOnly: string;
  /** Comments removed and every top-level string literal replaced by `"#<index into strings>"`. */
  tokens: string;
  strings: StringLiteral[];
}

const REGEX_PRECEDERS = new Set([..."(,=:[!&|?{};+-*%<>~^"]);
const REGEX_KEYWORDS = new Set(["return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void", "throw", "yield", "await"]);

export function scanSource(text: string): Scanned {
  const n = text.length;
  const codeOnly: string[] = [];
  const tokens: string[] = [];
  const strings: StringLiteral[] = [];
  let line = 1;
  let lastSignificant = "";
  let lastWord = "";
  let templateDepth = 0;

  const put = (ch: string, code: boolean) => {
    codeOnly.push(code ? ch : ch === "\n" ? "\n" : " ");
    if (code && templateDepth === 0) tokens.push(ch);
    if (ch === "\n") line++;
  };
  const isIdent = (ch: string | undefined) => ch !== undefined && /[A-Za-z0-9_$]/.test(ch);

  /** Lexes from `start` to the end of the text, or to the `}` closing a template's `${`; returns where it stopped. */
  const lex = (start: number, inTemplateExpr: boolean): number => {
    let i = start;
    let braces = 0;
    while (i < n) {
      const c = text[i]!;
      const next = text[i + 1];

      if (c === "/" && next === "/") {
        while (i < n && text[i] !== "\n") put(text[i++]!, false);
        continue;
      }
      if (c === "/" && next === "*") {
        const end = text.indexOf("*/", i + 2);
        const stop = end < 0 ? n : end + 2;
        while (i < stop) put(text[i++]!, false);
        tokens.push(" ");
        continue;
      }

      if (c === '"' || c === "'") {
        const index = strings.length;
        const literal: StringLiteral = { value: "", quote: c, line, nested: templateDepth > 0 };
        strings.push(literal);
        if (templateDepth === 0) tokens.push(`"#${index}"`);
        codeOnly.push(c);
        i++;
        while (i < n && text[i] !== c && text[i] !== "\n") {
          if (text[i] === "\\" && i + 1 < n) {
            literal.value += text[i]!;
            put(text[i++]!, false);
          }
          literal.value += text[i]!;
          put(text[i++]!, false);
        }
        if (i < n && text[i] === c) {
          codeOnly.push(c);
          i++;
        }
        lastSignificant = c;
        lastWord = "";
        continue;
      }

      if (c === "`") {
        const index = strings.length;
        const literal: StringLiteral = { value: "", quote: "`", line, nested: templateDepth > 0 };
        strings.push(literal);
        if (templateDepth === 0) tokens.push(`"#${index}"`);
        templateDepth++;
        codeOnly.push(c);
        i++;
        while (i < n && text[i] !== "`") {
          if (text[i] === "\\" && i + 1 < n) {
            literal.value += text[i]! + text[i + 1]!;
            put(text[i++]!, false);
            put(text[i++]!, false);
          } else if (text[i] === "$" && text[i + 1] === "{") {
            const from = i;
            put(text[i++]!, true);
            put(text[i++]!, true);
            i = lex(i, true);
            if (i < n) put(text[i++]!, true);
            literal.value += text.slice(from, i);
          } else {
            literal.value += text[i]!;
            put(text[i++]!, false);
          }
        }
        if (i < n) {
          codeOnly.push("`");
          i++;
        }
        templateDepth--;
        lastSignificant = "`";
        lastWord = "";
        continue;
      }

      if (c === "/" && (lastSignificant === "" || REGEX_PRECEDERS.has(lastSignificant) || REGEX_KEYWORDS.has(lastWord))) {
        // A regex literal: to the closing slash outside a character class, then its flags.
        put(text[i++]!, true);
        let inClass = false;
        while (i < n && text[i] !== "\n") {
          const r = text[i]!;
          if (r === "\\") {
            put(text[i++]!, false);
            if (i < n) put(text[i++]!, false);
            continue;
          }
          if (r === "/" && !inClass) break;
          if (r === "[") inClass = true;
          else if (r === "]") inClass = false;
          put(text[i++]!, false);
        }
        if (i < n && text[i] === "/") put(text[i++]!, true);
        while (i < n && /[a-z]/i.test(text[i]!)) put(text[i++]!, true);
        lastSignificant = "/";
        lastWord = "";
        continue;
      }

      if (inTemplateExpr) {
        if (c === "{") braces++;
        else if (c === "}") {
          if (braces === 0) return i;
          braces--;
        }
      }

      if (isIdent(c)) {
        let word = "";
        while (i < n && isIdent(text[i])) {
          word += text[i]!;
          put(text[i++]!, true);
        }
        lastWord = word;
        lastSignificant = word[word.length - 1]!;
        continue;
      }
      put(c, true);
      i++;
      if (!/\s/.test(c)) {
        lastSignificant = c;
        lastWord = "";
      }
    }
    return i;
  };

  lex(0, false);
  return { codeOnly: codeOnly.join(""), tokens: tokens.join(""), strings };
}

/** Module specifiers of static imports and re-exports, side-effect imports, dynamic imports and require(). */
export function importsOf(source: string): string[] {
  const { tokens, strings } = scanSource(source);
  const STR = String.raw`"#(\d+)"`;
  const patterns = [
    new RegExp(String.raw`\b(?:import|export)\b[^;"]*?\bfrom\s*${STR}`, "g"),
    new RegExp(String.raw`\bimport\s*${STR}`, "g"),
    new RegExp(String.raw`\bimport\s*\(\s*${STR}`, "g"),
    new RegExp(String.raw`\brequire\s*\(\s*${STR}`, "g"),
  ];
  const specs: string[] = [];
  for (const pattern of patterns) {
    for (const m of tokens.matchAll(pattern)) specs.push(strings[Number(m[1])]!.value);
  }
  return specs;
}

const SUBJECT_SPELLINGS: Array<[string, RegExp]> = [
  ["a literal starting with fm.", /^fm\./],
  ["a `.tasks.` subject part", /\.tasks(\.|$)/],
  ["a `.results.` subject part", /\.results(\.|$)/],
  ["a `.progress.` subject part", /\.progress(\.|$)/],
  ["a `.exec.` subject part", /\.exec(\.|$)/],
  ["a `.flows.start` subject part", /\.flows\.start/],
  ["a `.events.` subject part", /\.events(\.|$)/],
  ["a `.dlq.` subject part", /\.dlq(\.|$)/],
  ["a `.api.` subject part", /\.api(\.|$)/],
];

/** String literals that spell a subject by hand (one report per literal). */
export function subjectSpellings(source: string): string[] {
  const found: string[] = [];
  for (const s of scanSource(source).strings) {
    // A nested template is reported through the template that contains it.
    if (s.nested) continue;
    const hit = SUBJECT_SPELLINGS.find(([, pattern]) => pattern.test(s.value));
    if (hit) found.push(`line ${s.line}: ${s.quote}${s.value}${s.quote} (${hit[0]})`);
  }
  return found;
}

/** Lines that call console.* in code (comments and strings do not count). */
export function consoleCalls(source: string): string[] {
  return scanSource(source)
    .codeOnly.split("\n")
    .flatMap((l, i) => (/(^|[^.\w$])console\s*\./.test(l) ? [`line ${i + 1}`] : []));
}
