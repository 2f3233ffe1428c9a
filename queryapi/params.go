package queryapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

// badParam is client input the API refuses: a 400 naming the parameter.
type badParam struct {
	name, msg string
}

func (e *badParam) Error() string { return e.name + ": " + e.msg }

func bad(name, format string, args ...any) error {
	return &badParam{name: name, msg: fmt.Sprintf(format, args...)}
}

// pathParam unescapes a {param} (routing is on the escaped path, see
// rawPathRouting) and refuses an empty name.
func pathParam(r *http.Request, name string) (string, error) {
	raw := chi.URLParam(r, name)
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", bad(name, "bad escape in %q", raw)
	}
	if v == "" {
		return "", bad(name, "empty name")
	}
	return v, nil
}

// params holds a request's query. Scalars are decoded as usual; list
// parameters (goals, weights) are split on literal commas before unescaping,
// so a comma inside a name is sent as %2C.
type params struct {
	raw map[string][]string // key → raw (still escaped) values
}

func parseParams(r *http.Request, allowed ...string) (params, error) {
	p := params{raw: map[string][]string{}}
	for part := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return p, bad("query", "bad escape in %q", k)
		}
		if !contains(allowed, key) {
			if len(allowed) == 0 {
				return p, bad(key, "unknown parameter: this endpoint takes no parameters")
			}
			sorted := slices.Sorted(slices.Values(allowed))
			return p, bad(key, "unknown parameter (allowed: %s)", strings.Join(sorted, ", "))
		}
		p.raw[key] = append(p.raw[key], v)
	}
	return p, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str returns a scalar parameter ("" when absent); given twice is an error.
// has reports whether the parameter was given, even with an empty value.
func (p params) has(name string) bool { return len(p.raw[name]) > 0 }

func (p params) str(name string) (string, error) {
	vs := p.raw[name]
	if len(vs) == 0 {
		return "", nil
	}
	if len(vs) > 1 {
		return "", bad(name, "given %d times", len(vs))
	}
	v, err := url.QueryUnescape(vs[0])
	if err != nil {
		return "", bad(name, "bad escape in %q", vs[0])
	}
	return v, nil
}

// list returns a comma-separated list parameter, also accepting repeats.
func (p params) list(name string) ([]string, error) {
	var out []string
	for _, v := range p.raw[name] {
		for part := range strings.SplitSeq(v, ",") {
			s, err := url.QueryUnescape(part)
			if err != nil {
				return nil, bad(name, "bad escape in %q", part)
			}
			if s == "" {
				return nil, bad(name, "empty element")
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// weights parses "name:weight,name:weight".
func (p params) weights(name string) ([]string, []float64, error) {
	var names []string
	var ws []float64
	for _, v := range p.raw[name] {
		for part := range strings.SplitSeq(v, ",") {
			k, w, ok := strings.Cut(part, ":")
			if !ok {
				return nil, nil, bad(name, "%q is not population:weight", part)
			}
			n, err := url.QueryUnescape(k)
			if err != nil || n == "" {
				return nil, nil, bad(name, "bad population name %q", k)
			}
			f, err := strconv.ParseFloat(w, 64)
			if err != nil || !(f > 0) || f > 1e300 {
				return nil, nil, bad(name, "weight %q of %q is not a positive number", w, n)
			}
			if contains(names, n) {
				return nil, nil, bad(name, "population %q given twice", n)
			}
			names = append(names, n)
			ws = append(ws, f)
		}
	}
	return names, ws, nil
}

func (p params) site() (*int64, error) {
	v, err := p.str("site_id")
	if err != nil || v == "" {
		return nil, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, bad("site_id", "%q is not an integer", v)
	}
	return &n, nil
}
