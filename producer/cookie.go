package producer

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// signer signs visitor ids as the original system did: hex HMAC-SHA1 of the
// vid keyed with SHA1("manhattan.signer." + secret). HMAC is spelled out over
// precomputed pads so that verifying a cookie allocates nothing.
type signer struct {
	ipad, opad [sha1.BlockSize]byte

	// verified remembers recently verified cookie values (direct-mapped by
	// hash; a collision just evicts), so a returning visitor's cookie costs
	// a hash and a compare instead of the four SHA-1 blocks of the HMAC.
	// Only values whose signature checked out are stored.
	seed     maphash.Seed
	verified [verifiedSlots]atomic.Pointer[verifiedCookie]
}

const verifiedSlots = 4096

type verifiedCookie struct{ value, vid string }

func newSigner(secret string) *signer {
	key := sha1.Sum([]byte("manhattan.signer." + secret))
	s := &signer{seed: maphash.MakeSeed()}
	for i := range s.ipad {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		s.ipad[i] = k ^ 0x36
		s.opad[i] = k ^ 0x5c
	}
	return s
}

const maxVIDLen = 128

func (s *signer) mac(vid string) [sha1.Size]byte {
	var buf [sha1.BlockSize + maxVIDLen]byte
	n := copy(buf[:], s.ipad[:])
	n += copy(buf[n:], vid)
	inner := sha1.Sum(buf[:n])
	n = copy(buf[:], s.opad[:])
	n += copy(buf[n:], inner[:])
	return sha1.Sum(buf[:n])
}

// sign returns the cookie value "vid.signature".
func (s *signer) sign(vid string) string {
	m := s.mac(vid)
	var out [maxVIDLen + 1 + 2*sha1.Size]byte
	n := copy(out[:], vid)
	out[n] = '.'
	n++
	n += hex.Encode(out[n:], m[:])
	return string(out[:n])
}

// verify returns the vid of a cookie value whose signature checks out.
func (s *signer) verify(value string) (string, bool) {
	slot := &s.verified[maphash.String(s.seed, value)%verifiedSlots]
	if c := slot.Load(); c != nil && equalConstantTime(c.value, value) {
		return c.vid, true
	}
	vid, ok := s.verifyMAC(value)
	if ok {
		v := strings.Clone(value) // do not pin the request's header
		slot.Store(&verifiedCookie{value: v, vid: v[:len(vid)]})
	}
	return vid, ok
}

// equalConstantTime compares without an early exit, so timing tells an
// attacker nothing about how much of a valid cookie a guess matched.
func equalConstantTime(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := 0; i < len(a); i++ {
		d |= a[i] ^ b[i]
	}
	return d == 0
}

func (s *signer) verifyMAC(value string) (string, bool) {
	dot := -1
	for i := len(value) - 1; i >= 0; i-- {
		if value[i] == '.' {
			dot = i
			break
		}
	}
	if dot <= 0 || dot > maxVIDLen || len(value)-dot-1 != 2*sha1.Size {
		return "", false
	}
	vid := value[:dot]
	for i := 0; i < len(vid); i++ {
		c := vid[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return "", false
		}
	}
	var got [sha1.Size]byte
	if _, err := hex.Decode(got[:], []byte(value[dot+1:])); err != nil {
		return "", false
	}
	want := s.mac(vid)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return "", false
	}
	return vid, true
}

// newVID returns 20 random bytes as 40 hex digits.
func newVID() string {
	var b [20]byte
	rand.Read(b[:]) // never fails (crypto/rand panics on its own if the OS fails)
	return hex.EncodeToString(b[:])
}

// cookieValue finds the value of the named cookie in Cookie headers without
// allocating; it returns every candidate in turn through fn until fn says stop
// (browsers may send several cookies of one name for different paths).
func eachCookie(headers []string, name string, fn func(string) bool) {
	for _, h := range headers {
		for len(h) > 0 {
			var part string
			if i := strings.IndexByte(h, ';'); i >= 0 {
				part, h = h[:i], h[i+1:]
			} else {
				part, h = h, ""
			}
			part = trimSpace(part)
			if len(part) <= len(name) || part[:len(name)] != name || part[len(name)] != '=' {
				continue
			}
			v := part[len(name)+1:]
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if fn(v) {
				return
			}
		}
	}
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
