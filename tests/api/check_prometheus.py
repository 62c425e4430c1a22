#!/usr/bin/env python3
"""Strict check of a Prometheus text exposition (format 0.0.4).

Usage: check_prometheus.py FILE [REQUIRED_SERIES ...]

Fails (exit 1, one line per problem) when a line is neither a comment, a
HELP/TYPE line nor a well-formed sample; a metric or label name is invalid;
a label value has a bad escape; a value is not a float; a sample comes
before its family's TYPE, or its family's samples are not contiguous; a
family has two TYPE or HELP lines; a series appears twice; a counter's name
does not end in _total or its value is negative; the text does not end
with a newline. Each REQUIRED_SERIES (e.g. 'm3s_role_desired{role="agent"}'
or a bare family name) must be present.
"""
import re
import sys

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*'
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}


def parse_labels(text, errors, lineno):
    """Parses 'a="x",b="y"' into a tuple of pairs; escapes \\\\, \\" and \\n."""
    labels = []
    i = 0
    while i < len(text):
        m = re.match(LABEL, text[i:])
        if not m:
            errors.append(f'{lineno}: bad label name at {text[i:]!r}')
            return None
        name = m.group(0)
        i += len(name)
        if text[i:i + 2] != '="':
            errors.append(f'{lineno}: expected =" after label {name}')
            return None
        i += 2
        value = []
        while True:
            if i >= len(text):
                errors.append(f'{lineno}: unterminated value of label {name}')
                return None
            c = text[i]
            if c == '\\':
                nxt = text[i + 1:i + 2]
                if nxt not in ('\\', '"', 'n'):
                    errors.append(f'{lineno}: bad escape \\{nxt} in label {name}')
                    return None
                value.append({'n': '\n'}.get(nxt, nxt))
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == '\n':
                errors.append(f'{lineno}: newline in label {name}')
                return None
            else:
                value.append(c)
                i += 1
        if name in dict(labels):
            errors.append(f'{lineno}: label {name} twice')
        labels.append((name, ''.join(value)))
        if i < len(text):
            if text[i] != ',':
                errors.append(f'{lineno}: expected , between labels')
                return None
            i += 1
    return tuple(labels)


def family_of(name, types):
    for suffix in ('_bucket', '_sum', '_count'):
        if name.endswith(suffix) and name[:-len(suffix)] in types:
            return name[:-len(suffix)]
    return name


def check(text):
    errors = []
    types, helps, series = {}, set(), set()
    done, current = set(), None
    if text and not text.endswith('\n'):
        errors.append('the text does not end with a newline')
    sample_re = re.compile(r'^(' + NAME + r')(\{(.*)\})? (\S+)( -?[0-9]+)?$')
    for lineno, line in enumerate(text.split('\n')[:-1], 1):
        if line == '':
            continue
        if line.startswith('#'):
            m = re.match(r'^# (HELP|TYPE) (' + NAME + r') (.*)$', line)
            if not m:
                if re.match(r'^# (HELP|TYPE)\b', line):
                    errors.append(f'{lineno}: malformed {line!r}')
                continue
            kind, name, rest = m.groups()
            if kind == 'TYPE':
                if rest not in TYPES:
                    errors.append(f'{lineno}: unknown type {rest!r}')
                if name in types:
                    errors.append(f'{lineno}: second TYPE for {name}')
                if name in done:
                    errors.append(f'{lineno}: TYPE for {name} after its samples')
                types[name] = rest
                if rest == 'counter' and not name.endswith('_total'):
                    errors.append(f'{lineno}: counter {name} does not end in _total')
            else:
                if name in helps:
                    errors.append(f'{lineno}: second HELP for {name}')
                helps.add(name)
            continue
        m = sample_re.match(line)
        if not m:
            errors.append(f'{lineno}: not a sample: {line!r}')
            continue
        name, _, labeltext, value, _ts = m.groups()
        labels = parse_labels(labeltext, errors, lineno) if labeltext else ()
        if labels is None:
            continue
        try:
            v = float(value)
        except ValueError:
            errors.append(f'{lineno}: bad value {value!r}')
            continue
        fam = family_of(name, types)
        if fam not in types:
            errors.append(f'{lineno}: sample {name} before any TYPE of its family')
        elif types[fam] == 'counter' and v < 0:
            errors.append(f'{lineno}: negative counter {name}')
        if fam != current:
            if fam in done:
                errors.append(f'{lineno}: samples of {fam} are not contiguous')
            if current is not None:
                done.add(current)
            current = fam
        key = (name, tuple(sorted(labels)))
        if key in series:
            errors.append(f'{lineno}: series {name}{dict(labels)} twice')
        series.add(key)
    return errors, series


def present(required, series):
    m = re.match(r'^(' + NAME + r')(\{(.*)\})?$', required)
    if not m:
        return False
    name, _, labeltext = m.groups()
    want = set(parse_labels(labeltext, [], 0) or ()) if labeltext else set()
    return any(n == name and want <= set(l) for n, l in series)


def main():
    with open(sys.argv[1], encoding='utf-8') as f:
        text = f.read()
    errors, series = check(text)
    for req in sys.argv[2:]:
        if not present(req, series):
            errors.append(f'missing series {req}')
    for e in errors:
        print(e)
    if not series:
        print('no samples at all')
        return 1
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
