package queryapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

type oaDoc struct {
	OpenAPI    string `json:"openapi"`
	Components struct {
		Schemas    map[string]map[string]any `json:"schemas"`
		Parameters map[string]oaParam        `json:"parameters"`
	} `json:"components"`
	Paths map[string]map[string]struct {
		Parameters []oaParam `json:"parameters"`
		Responses  map[string]struct {
			Content map[string]struct {
				Schema map[string]any `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
}

type oaParam struct {
	Ref      string `json:"$ref"`
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
}

// validate checks v against the subset of OpenAPI schema this document uses:
// $ref, type, nullable, required, properties (no others allowed), items.
func (d *oaDoc) validate(s map[string]any, v any, at string) error {
	if ref, ok := s["$ref"].(string); ok {
		return d.validate(d.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")], v, at)
	}
	if v == nil {
		if s["nullable"] == true {
			return nil
		}
		return fmt.Errorf("%s: null but not nullable", at)
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want object", at, v)
		}
		for _, r := range asList(s["required"]) {
			if _, ok := m[r.(string)]; !ok {
				return fmt.Errorf("%s: missing required %q", at, r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		if props == nil {
			return nil // free-form object
		}
		for k, pv := range m {
			ps, ok := props[k].(map[string]any)
			if !ok {
				return fmt.Errorf("%s: undocumented property %q", at, k)
			}
			if err := d.validate(ps, pv, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want array", at, v)
		}
		for i, e := range a {
			if err := d.validate(s["items"].(map[string]any), e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %T, want string", at, v)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			return fmt.Errorf("%s: %v, want integer", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: %T, want number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want boolean", at, v)
		}
	default:
		return fmt.Errorf("%s: schema without a known type: %v", at, s)
	}
	return nil
}

func asList(v any) []any { l, _ := v.([]any); return l }

func loadDoc(t *testing.T) *oaDoc {
	t.Helper()
	var d oaDoc
	if err := json.Unmarshal(OpenAPI(), &d); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.") || len(d.Paths) == 0 {
		t.Fatalf("not an OpenAPI 3 document: %q", d.OpenAPI)
	}
	return &d
}

// TestOpenAPIMatchesRoutes walks every route of the document: the router has
// exactly the documented routes, and each answers its documented statuses with
// bodies that match the documented schemas.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	d := loadDoc(t)
	f := world()
	h, err := New(Options{Store: f, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var routed []string
	err = chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routed = append(routed, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for p, ops := range d.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(routed)
	sort.Strings(documented)
	if strings.Join(routed, "\n") != strings.Join(documented, "\n") {
		t.Fatalf("routes differ from the document:\nrouter:\n%s\ndocument:\n%s", strings.Join(routed, "\n"), strings.Join(documented, "\n"))
	}

	srv, _ := newTestServer(t, f, Options{Token: "tok"})
	examples := map[string]string{"goal": "per visit", "test": "cta", "rollup": "day"}
	badFilter := map[string]string{"rollup": "rollup=nope", "bucket": "bucket=2025-12-1", "from": "from=abc", "to": "to=2025-12-01T05"}
	rawQuery := map[string]string{"rollup": "day", "goals": "signup,purchase,per+visit"} // already escaped
	tried := 0
	for p, ops := range d.Paths {
		for m, op := range ops {
			var pathParams, query, optional []string
			for _, prm := range op.Parameters {
				if prm.Ref != "" {
					prm = d.Components.Parameters[strings.TrimPrefix(prm.Ref, "#/components/parameters/")]
				}
				if prm.Name == "" {
					t.Fatalf("%s %s: unresolved parameter", m, p)
				}
				switch {
				case prm.In == "path":
					pathParams = append(pathParams, prm.Name)
				case prm.Required:
					query = append(query, prm.Name+"="+rawQuery[prm.Name])
				default:
					optional = append(optional, prm.Name)
				}
			}
			build := func(name string, q []string) string {
				u := p
				for _, pp := range pathParams {
					n := examples[pp]
					if name != "" {
						n = name
					}
					u = strings.ReplaceAll(u, "{"+pp+"}", url.PathEscape(n))
				}
				if len(q) > 0 {
					u += "?" + strings.Join(q, "&")
				}
				return srv.URL + u
			}
			calls := map[string]func() string{"200": func() string { return build("", query) }}
			calls["400"] = func() string { return build("", append(query, "no_such_param=1")) }
			calls["404"] = func() string { return build("no such name", query) }
			calls["401"] = func() string { return build("", query) }
			calls["503"] = func() string { f.setDown(true); return build("", query) }
			// Each documented rollup filter, given a malformed value, is a
			// documented 400 naming it.
			for _, name := range append(optional, query...) {
				badq, ok := badFilter[name]
				if !ok {
					continue
				}
				resp, ok := op.Responses["400"]
				if !ok {
					t.Errorf("%s %s: takes %s but documents no 400", m, p, name)
					continue
				}
				q := []string{badq}
				if name != "rollup" {
					q = append(q, "rollup=day")
				}
				for _, rq := range query {
					if !strings.HasPrefix(rq, "rollup=") {
						q = append(q, rq)
					}
				}
				code, body, _ := get(t, build("", q), "Authorization", "bearer tok")
				tried++
				if code != 400 || !strings.Contains(fmt.Sprint(body["error"]), name) {
					t.Errorf("%s %s with %s: %d %v, want 400 naming %s", m, p, badq, code, body, name)
				}
				if err := d.validate(resp.Content["application/json"].Schema, body, "body"); err != nil {
					t.Errorf("%s %s with %s: %v", m, p, badq, err)
				}
			}
			for code, resp := range op.Responses {
				mk, ok := calls[code]
				if !ok {
					t.Fatalf("%s %s: no way to provoke %s", m, p, code)
				}
				u := mk()
				hdr := []string{"Authorization", "Bearer tok"}
				if code == "401" {
					hdr = nil
				}
				req, _ := http.NewRequest(strings.ToUpper(m), u, nil)
				for i := 0; i < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				res, err := http.DefaultClient.Do(req)
				f.setDown(false)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				tried++
				if fmt.Sprint(res.StatusCode) != code {
					t.Errorf("%s %s: status %d, want %s: %s", m, u, res.StatusCode, code, body)
					continue
				}
				for ct, c := range resp.Content {
					if !strings.HasPrefix(res.Header.Get("Content-Type"), ct) {
						t.Errorf("%s %s: Content-Type %q, want %s", m, u, res.Header.Get("Content-Type"), ct)
					}
					if ct != "application/json" {
						continue
					}
					var v any
					if err := json.Unmarshal(body, &v); err != nil {
						t.Errorf("%s %s: %v", m, u, err)
						continue
					}
					if err := d.validate(c.Schema, v, "body"); err != nil {
						t.Errorf("%s %s (%s): %v", m, u, code, err)
					}
				}
			}
		}
	}
	if tried < 30 {
		t.Errorf("only %d responses checked", tried)
	}
}

// The validator must reject what does not match, or the walk proves nothing.
func TestOpenAPIValidatorRejects(t *testing.T) {
	d := loadDoc(t)
	ref := map[string]any{"$ref": "#/components/schemas/GoalCount"}
	good := map[string]any{"goal": "g", "count": float64(1), "value": "1.5", "value_type": "", "value_format": ""}
	if err := d.validate(ref, good, "x"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]any{
		{"goal": "g", "count": "1", "value": "1.5", "value_type": "", "value_format": ""},
		{"goal": "g", "count": float64(1), "value": 1.5, "value_type": "", "value_format": ""},
		{"goal": "g", "count": float64(1.5), "value": "1.5", "value_type": "", "value_format": ""},
		{"goal": "g", "value": "1.5", "value_type": "", "value_format": ""},
		{"goal": "g", "count": float64(1), "value": "1.5", "value_type": "", "value_format": "", "extra": 1},
	} {
		if d.validate(ref, bad, "x") == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}
