"""Shape of the workspace, for reports/baseline/build.md: `pub` declarations in proxy/src
and Rust functions over 80 lines. Usage: python3 ci/shape.py [ROOT]"""
import re, sys, pathlib
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
pub_re = re.compile(r'^\s*pub (async fn|fn|struct|enum|trait|mod|use|const|static|type)\b')
fn_re = re.compile(r'(?m)^[ \t]*(pub(\([a-z]+\))?\s+)?(async\s+)?(const\s+)?fn\s+(\w+)')

def strip(src):
    """Blank out comments, strings and char literals, keeping newlines."""
    out = []; i = 0; n = len(src)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i); j = n if j < 0 else j
            out.append(' ' * (j - i)); i = j; continue
        if src.startswith('/*', i):
            j = src.find('*/', i); j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', src[i:j])); i = j; continue
        m = re.match(r'b?r(#*)"', src[i:i+10])
        if m and (i == 0 or not (src[i-1].isalnum() or src[i-1] == '_')):
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0))); j = n if j < 0 else j + len(end)
            out.append(re.sub(r'[^\n]', ' ', src[i:j])); i = j; continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            out.append(re.sub(r'[^\n]', ' ', src[i:j+1])); i = j + 1; continue
        m = re.match(r"'(\\.|[^\\'])'", src[i:i+4]) or re.match(r"'\\u\{[0-9a-fA-F]+\}'", src[i:i+12])
        if m:
            out.append(' ' * len(m.group(0))); i += len(m.group(0)); continue
        out.append(c); i += 1
    return ''.join(out)

pubs = sum(1 for f in (root / 'proxy/src').rglob('*.rs') for l in f.read_text().splitlines() if pub_re.match(l))
long = []
for f in root.rglob('*.rs'):
    if 'target' in f.parts: continue
    s = strip(f.read_text())
    for m in fn_re.finditer(s):
        k = m.end()
        while k < len(s) and s[k] not in '{;': k += 1
        if k >= len(s) or s[k] == ';': continue
        depth = 0; j = k
        while j < len(s):
            if s[j] == '{': depth += 1
            elif s[j] == '}':
                depth -= 1
                if depth == 0: break
            j += 1
        start = s.count('\n', 0, m.start()) + 1
        lines = s.count('\n', m.start(), j) + 1
        if lines > 80:
            long.append((lines, f"{f.relative_to(root)}:{start} {m.group(5)}"))
print(f"pub items in proxy/src: {pubs}")
print(f"functions over 80 lines: {len(long)}")
for n, w in sorted(long, reverse=True): print(f"  {n:4d} {w}")
