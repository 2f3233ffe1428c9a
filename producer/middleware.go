package producer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/manhattan-go/manhattan/event"
)

// Options configure the middleware. Config keys (cmd/manhattan):
// producer.secret → Secret, producer.cookie_name → CookieName,
// producer.pixel_path → PixelPath, producer.host_map → HostMap,
// producer.split_seeding → SplitSeeding.
type Options struct {
	// Secret signs visitor cookies; required. Keep it across deploys (and
	// equal to the original system's to keep its visitors).
	Secret string
	// Sink receives every request's events; required (usually a *Writer).
	Sink Sink

	CookieName     string        // default "manhattan"
	CookiePath     string        // default "/"
	CookieDomain   string        // default: host-only cookie
	CookieMaxAge   time.Duration // default 2 years; negative: session cookie
	CookieSecure   bool          // send the cookie over HTTPS only
	CookieSameSite http.SameSite // default Lax

	// PixelPath serves the tracking pixel; default "/vpixel.gif".
	PixelPath string
	// DisableInjection turns off adding the pixel tag to HTML responses
	// (then the app must include it itself, see PixelTag).
	DisableInjection bool

	// HostMap maps the request host (port stripped, case-insensitive) to a
	// site id; unknown hosts are site 0.
	HostMap map[string]int64

	// SplitSeeding is how Split seeds its draw: SeedDesign (default, "") or
	// SeedPython2 to keep the populations a Python 2 deployment of the
	// original system gave (50/50 and list splits only).
	SplitSeeding SplitSeeding

	// Now is the clock; default time.Now. Tests inject a fixed one.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Middleware records page views, goals and splits of web requests; see
// Handler. Create it with New.
type Middleware struct {
	sink       Sink
	signer     *signer
	cookieName string
	cookieTail string // "; Path=/; Max-Age=…; HttpOnly; …" appended to vid.sig
	pixelPath  string
	pixelTag   []byte
	inject     bool
	hostMap    map[string]int64
	seeding    SplitSeeding
	now        func() time.Time
	log        *slog.Logger
}

// New checks opts and returns the middleware.
func New(opts Options) (*Middleware, error) {
	if opts.Secret == "" {
		return nil, errors.New("producer: Options.Secret (producer.secret) is required to sign visitor cookies")
	}
	if opts.Sink == nil {
		return nil, errors.New("producer: Options.Sink is required (e.g. a *producer.Writer)")
	}
	m := &Middleware{
		sink:       opts.Sink,
		signer:     newSigner(opts.Secret),
		cookieName: opts.CookieName,
		pixelPath:  opts.PixelPath,
		inject:     !opts.DisableInjection,
		now:        opts.Now,
		log:        opts.Logger,
		hostMap:    map[string]int64{},
	}
	if m.cookieName == "" {
		m.cookieName = "manhattan"
	}
	if !validCookieName(m.cookieName) {
		return nil, errors.New("producer: Options.CookieName (producer.cookie_name) " + strconv.Quote(m.cookieName) + " is not a valid cookie name")
	}
	if m.pixelPath == "" {
		m.pixelPath = "/vpixel.gif"
	}
	if !strings.HasPrefix(m.pixelPath, "/") || strings.ContainsAny(m.pixelPath, "\"<> ") {
		return nil, errors.New("producer: Options.PixelPath (producer.pixel_path) must be a path starting with '/': " + strconv.Quote(m.pixelPath))
	}
	m.pixelTag = []byte(PixelTag(m.pixelPath))
	seeding, err := ParseSplitSeeding(string(opts.SplitSeeding))
	if err != nil {
		return nil, fmt.Errorf("producer: Options.SplitSeeding (producer.split_seeding): %w", err)
	}
	m.seeding = seeding
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	for host, site := range opts.HostMap {
		if site < 0 {
			return nil, errors.New("producer: Options.HostMap (producer.host_map): negative site id for " + strconv.Quote(host))
		}
		m.hostMap[hostOnly(host)] = site
	}

	var tail strings.Builder
	path := opts.CookiePath
	if path == "" {
		path = "/"
	}
	tail.WriteString("; Path=" + path)
	if opts.CookieDomain != "" {
		tail.WriteString("; Domain=" + opts.CookieDomain)
	}
	maxAge := opts.CookieMaxAge
	if maxAge == 0 {
		maxAge = 2 * 365 * 24 * time.Hour
	}
	if maxAge > 0 {
		tail.WriteString("; Max-Age=" + strconv.FormatInt(int64(maxAge/time.Second), 10))
	}
	tail.WriteString("; HttpOnly")
	if opts.CookieSecure {
		tail.WriteString("; Secure")
	}
	switch opts.CookieSameSite {
	case http.SameSiteStrictMode:
		tail.WriteString("; SameSite=Strict")
	case http.SameSiteNoneMode:
		tail.WriteString("; SameSite=None")
	default:
		tail.WriteString("; SameSite=Lax")
	}
	m.cookieTail = tail.String()
	return m, nil
}

func validCookieName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return s != ""
}

// PixelTag is the tag injected before </body>.
func PixelTag(pixelPath string) string {
	return `<img width="1" height="1" src="` + pixelPath + `" alt="" />`
}

// request bundles everything the middleware needs per request into one
// allocation.
type request struct {
	ctx visitorCtx
	v   Visitor
	rw  responseWriter
}

// Handler wraps next: every request gets a visitor (from its signed cookie or
// a new one), counted requests record a page view, HTML responses get the
// tracking pixel, and the pixel path is answered here. It fits net/http, chi
// (r.Use(m.Handler)), gorilla/mux and anything taking func(http.Handler)
// http.Handler.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == m.pixelPath {
			m.servePixel(w, r)
			return
		}
		rq := &request{}
		v := &rq.v
		v.m = m
		v.evs = v.buf[:0]
		v.id, v.known = m.visitorID(r)
		if !v.known {
			v.id = newVID()
			w.Header().Add("Set-Cookie", m.cookieName+"="+m.signer.sign(v.id)+m.cookieTail)
		}
		v.site = m.site(r.Host)
		defer v.flush()
		if counted(r) {
			v.record(pageEvent(r))
		}
		rq.ctx = visitorCtx{Context: r.Context(), v: v}
		r = r.WithContext(&rq.ctx)
		if !m.inject || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		rq.rw = responseWriter{ResponseWriter: w, tag: m.pixelTag}
		next.ServeHTTP(&rq.rw, r)
		rq.rw.finish()
	})
}

func (m *Middleware) visitorID(r *http.Request) (vid string, ok bool) {
	eachCookie(r.Header["Cookie"], m.cookieName, func(val string) bool {
		vid, ok = m.signer.verify(val)
		return ok
	})
	return vid, ok
}

func (m *Middleware) site(host string) int64 {
	if len(m.hostMap) == 0 {
		return 0
	}
	return m.hostMap[hostOnly(host)]
}

// counted: GET or POST that is not a browser preview or prefetch.
func counted(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return false
	}
	h := r.Header
	if len(h["X-Purpose"]) > 0 && strings.EqualFold(first1(h, "X-Purpose"), "preview") {
		return false
	}
	for _, k := range [...]string{"Purpose", "Sec-Purpose", "X-Moz"} {
		if vs := h[k]; len(vs) > 0 && hasPrefixFold(vs[0], "prefetch") {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// A transparent 1×1 GIF.
var pixelGIF = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// servePixel answers the pixel path. Only a visitor who already holds a
// valid cookie records a pixel: a client that keeps no cookies looks like a
// bot and must not be confirmed human.
func (m *Middleware) servePixel(w http.ResponseWriter, r *http.Request) {
	if vid, ok := m.visitorID(r); ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		m.sink.Send([]event.Event{{Type: event.TypePixel, TS: m.now().UnixMicro(), VID: vid, SiteID: m.site(r.Host)}})
	}
	h := w.Header()
	h.Set("Content-Type", "image/gif")
	h.Set("Content-Length", strconv.Itoa(len(pixelGIF)))
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate, private, max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(pixelGIF)
	}
}
