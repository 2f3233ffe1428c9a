package producer

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const tag = `<img width="1" height="1" src="/vpixel.gif" alt="" />`

func serve(t *testing.T, h http.HandlerFunc) *httptest.ResponseRecorder {
	t.Helper()
	m, _ := newTestMW(t, Options{})
	w := httptest.NewRecorder()
	m.Handler(h).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	return w
}

func TestInjectStreamed(t *testing.T) {
	page := "<html><head><title>x</title></head><body><p>hello</p></body></html>"
	// Every way of cutting the page into 2 and 3 writes.
	for i := 0; i <= len(page); i++ {
		for j := i; j <= len(page); j += 3 {
			w := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				io.WriteString(w, page[:i])
				io.WriteString(w, page[i:j])
				io.WriteString(w, page[j:])
			})
			want := strings.Replace(page, "</body>", tag+"</body>", 1)
			if w.Body.String() != want {
				t.Fatalf("cut %d,%d: got %q", i, j, w.Body)
			}
		}
	}
}

func TestInjectByteAtATime(t *testing.T) {
	page := "<HTML><BODY>x</BoDy></HTML>"
	w := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		for i := range len(page) {
			w.Write([]byte{page[i]})
		}
	})
	if want := "<HTML><BODY>x" + tag + "</BoDy></HTML>"; w.Body.String() != want {
		t.Fatalf("got %q", w.Body)
	}
}

func TestInjectCases(t *testing.T) {
	cases := []struct {
		name    string
		h       http.HandlerFunc
		want    string
		wantLen string
	}{
		{"upper case", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<BODY>hi</BODY>")
		}, "<BODY>hi" + tag + "</BODY>", ""},
		{"sniffed html", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<!DOCTYPE html><html><body>hi</body></html>")
		}, "<!DOCTYPE html><html><body>hi" + tag + "</body></html>", ""},
		{"last body of the write", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<body><script>'</body>'</script></body>")
			io.WriteString(w, "</body>")
		}, "<body><script>'</body>'</script>" + tag + "</body></body>", ""},
		{"long page, tag far from the end", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<body>"+strings.Repeat("<p>y</p>", 100)+"</BODY>"+strings.Repeat("<!-- -->", 100))
		}, "<body>" + strings.Repeat("<p>y</p>", 100) + tag + "</BODY>" + strings.Repeat("<!-- -->", 100), ""},
		{"no body tag", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<p>fragment</")
		}, "<p>fragment</", ""},
		{"not html", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"x":"</body>"}`)
		}, `{"x":"</body>"}`, ""},
		{"content length fixed", func(w http.ResponseWriter, r *http.Request) {
			body := "<body>a</body>"
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(201)
			io.WriteString(w, body[:3])
			io.WriteString(w, body[3:])
		}, "<body>a" + tag + "</body>", strconv.Itoa(len("<body>a</body>") + len(tag))},
		{"content length without body tag", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "abc")
		}, "abc", "3"},
		{"no content", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(204)
		}, "", ""},
	}
	for _, c := range cases {
		w := serve(t, c.h)
		if w.Body.String() != c.want {
			t.Errorf("%s: got %q want %q", c.name, w.Body, c.want)
		}
		if got := w.Header().Get("Content-Length"); got != c.wantLen {
			t.Errorf("%s: Content-Length %q want %q", c.name, got, c.wantLen)
		}
	}
	if w := serve(t, cases[6].h); w.Code != 201 {
		t.Errorf("status %d", w.Code)
	}
}

func TestCompressedUntouched(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "<html><body>x</body></html>")
	zw.Close()
	w := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz.Bytes())
	})
	if !bytes.Equal(w.Body.Bytes(), gz.Bytes()) {
		t.Fatal("compressed body changed")
	}
}

// Over a real server: streaming with flushes, and Content-Length correct on
// the wire.
func TestInjectOverHTTP(t *testing.T) {
	m, _ := newTestMW(t, Options{})
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if r.URL.Path == "/cl" {
			body := strings.Repeat("x", 5000) + "</body>"
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
			return
		}
		io.WriteString(w, "<body>start</bo")
		http.NewResponseController(w).Flush()
		io.WriteString(w, "dy>")
	})))
	defer srv.Close()
	for path, want := range map[string]string{
		"/cl":     strings.Repeat("x", 5000) + tag + "</body>",
		"/stream": "<body>start</bo" + "dy>", // a flush in the middle of the tag gives it up
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("%s: got %q", path, b)
		}
		if path == "/cl" && resp.ContentLength != int64(len(want)) {
			t.Errorf("Content-Length %d, body %d", resp.ContentLength, len(want))
		}
	}
}

func BenchmarkIndexCloseBody(b *testing.B) {
	for b.Loop() {
		if indexCloseBody(typicalPage) < 0 {
			b.Fatal("not found")
		}
	}
}

func TestServeFileThroughMiddleware(t *testing.T) {
	dir := t.TempDir()
	page := "<html><body>static</body></html>"
	os.WriteFile(filepath.Join(dir, "index.html"), []byte(page), 0o644)
	os.WriteFile(filepath.Join(dir, "app.js"), []byte("var x = '</body>';"), 0o644)
	m, _ := newTestMW(t, Options{})
	srv := httptest.NewServer(m.Handler(http.FileServer(http.Dir(dir))))
	defer srv.Close()
	for path, want := range map[string]string{
		"/index.html": "<html><body>static" + tag + "</body></html>",
		"/app.js":     "var x = '</body>';",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("%s: got %q want %q", path, b, want)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != int64(len(want)) {
			t.Errorf("%s: Content-Length %d, body %d", path, resp.ContentLength, len(want))
		}
	}
}
