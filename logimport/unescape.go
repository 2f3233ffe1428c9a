package logimport

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Unescape decodes one field the way Python's bytes.decode("unicode_escape")
// does: \\ \' \" \a \b \f \n \r \t \v, octal \ooo, \xhh, \uhhhh, \Uhhhhhhhh
// and a backslash before a newline; an unknown escape such as \q stays as it
// is. UTF-16 surrogate pairs written as two \u escapes (what Python 2's
// narrow builds wrote for characters beyond the BMP) are joined; a lone
// surrogate becomes U+FFFD. Python reads raw bytes ≥ 0x80 as Latin-1; the
// original system never wrote them unescaped, so here raw bytes that form
// valid UTF-8 are kept as UTF-8 (a hand-edited file) and only invalid ones are
// read as Latin-1.
func Unescape(s string) (string, error) {
	if !strings.ContainsRune(s, '\\') && utf8.ValidString(s) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	pendingHigh := rune(-1) // a high surrogate waiting for its low half
	flushHigh := func() {
		if pendingHigh >= 0 {
			b.WriteRune(utf8.RuneError)
			pendingHigh = -1
		}
	}
	writeRune := func(r rune) {
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			flushHigh()
			pendingHigh = r
		case r >= 0xDC00 && r <= 0xDFFF:
			if pendingHigh >= 0 {
				b.WriteRune(0x10000 + (pendingHigh-0xD800)<<10 + (r - 0xDC00))
				pendingHigh = -1
			} else {
				b.WriteRune(utf8.RuneError)
			}
		default:
			flushHigh()
			b.WriteRune(r)
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			flushHigh()
			if c < utf8.RuneSelf {
				b.WriteByte(c)
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				r = rune(c) // Latin-1, as Python would
			}
			b.WriteRune(r)
			i += size
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("\\ at end of string")
		}
		e := s[i+1]
		i += 2
		switch e {
		case '\n':
			flushHigh()
		case '\\', '\'', '"':
			writeRune(rune(e))
		case 'a':
			writeRune('\a')
		case 'b':
			writeRune('\b')
		case 'f':
			writeRune('\f')
		case 'n':
			writeRune('\n')
		case 'r':
			writeRune('\r')
		case 't':
			writeRune('\t')
		case 'v':
			writeRune('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			r := rune(e - '0')
			for n := 1; n < 3 && i < len(s) && s[i] >= '0' && s[i] <= '7'; n++ {
				r = r*8 + rune(s[i]-'0')
				i++
			}
			writeRune(r)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+n > len(s) {
				return "", fmt.Errorf("truncated \\%c escape at byte %d", e, i-2)
			}
			var r rune
			for _, h := range []byte(s[i : i+n]) {
				d, ok := hexDigit(h)
				if !ok {
					return "", fmt.Errorf("invalid \\%c escape %q at byte %d", e, s[i-2:i+n], i-2)
				}
				r = r<<4 | d
			}
			if r > utf8.MaxRune || r < 0 {
				return "", fmt.Errorf("\\%c escape %q beyond U+10FFFF", e, s[i-2:i+n])
			}
			i += n
			writeRune(r)
		case 'N':
			return "", fmt.Errorf("\\N{…} named escapes are not supported (byte %d)", i-2)
		default:
			// Python keeps an unknown escape verbatim.
			flushHigh()
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	flushHigh()
	return b.String(), nil
}

func hexDigit(c byte) (rune, bool) {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0'), true
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10, true
	}
	return 0, false
}

// Escape encodes s as Python's str.encode("unicode_escape") does: the
// inverse of Unescape, used to write fixtures and by tests.
func Escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	return b.String()
}
