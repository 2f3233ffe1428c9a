// Package client is a small Go client of the Manhattan query API
// (package queryapi), and the home of its wire types.
//
//	c := client.New("http://localhost:8080", client.WithToken("secret"))
//	g, err := c.Goal(ctx, "pie accomplished", client.Filter{})
//	r, err := c.Results(ctx, "superior dessert preference", []string{"pie accomplished"}, client.ResultsOptions{})
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Client calls one query API server. Safe for concurrent use.
type Client struct {
	base  string
	http  *http.Client
	token string
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer token" on every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient uses hc instead of http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a client of the server at baseURL (e.g. "http://localhost:8080").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), http: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c
}

// APIError is a non-2xx answer.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("query api: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// IsNotFound reports whether err is a 404 (unknown goal or test).
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Filter narrows counts; zero fields are not filtered on (Rollup defaults to
// "all" on the server).
type Filter struct {
	Site       *int64
	Rollup     string
	Bucket     string
	Test       string
	Population string
}

func (f Filter) add(q *query) {
	if f.Site != nil {
		q.set("site_id", strconv.FormatInt(*f.Site, 10))
	}
	q.set("rollup", f.Rollup)
	q.set("bucket", f.Bucket)
	q.set("test", f.Test)
	q.set("population", f.Population)
}

// ResultsOptions are the optional parts of a results query.
type ResultsOptions struct {
	Site    *int64
	Rollup  string
	Bucket  string
	Control string             // default: the first population in sorted order
	Weights map[string]float64 // expected split, for the sample-ratio-mismatch check
}

// SeriesOptions select a time series: Rollup is required, From and To are
// bucket names (inclusive; empty means unbounded).
type SeriesOptions struct {
	Filter
	From, To string
}

// Goals lists the goals, sorted by name.
func (c *Client) Goals(ctx context.Context) (Goals, error) {
	var out Goals
	return out, c.get(ctx, "/v1/goals", nil, &out)
}

// Goal returns count and value of one goal.
func (c *Client) Goal(ctx context.Context, name string, f Filter) (GoalCount, error) {
	var q query
	f.add(&q)
	var out GoalCount
	return out, c.get(ctx, "/v1/goals/"+url.PathEscape(name), &q, &out)
}

// Series returns a goal's counts per bucket.
func (c *Client) Series(ctx context.Context, goal string, o SeriesOptions) (Series, error) {
	var q query
	o.Filter.add(&q)
	q.set("from", o.From)
	q.set("to", o.To)
	var out Series
	return out, c.get(ctx, "/v1/goals/"+url.PathEscape(goal)+"/series", &q, &out)
}

// Tests lists the split tests, newest last impression first.
func (c *Client) Tests(ctx context.Context) (Tests, error) {
	var out Tests
	return out, c.get(ctx, "/v1/tests", nil, &out)
}

// Test returns one test with its populations' impressions.
func (c *Client) Test(ctx context.Context, name string, f Filter) (TestDetail, error) {
	var q query
	f.add(&q)
	var out TestDetail
	return out, c.get(ctx, "/v1/tests/"+url.PathEscape(name), &q, &out)
}

// Results returns the values and statistics of goals per population of test.
func (c *Client) Results(ctx context.Context, test string, goals []string, o ResultsOptions) (Results, error) {
	var q query
	Filter{Site: o.Site, Rollup: o.Rollup, Bucket: o.Bucket}.add(&q)
	q.setList("goals", goals)
	q.set("control", o.Control)
	if len(o.Weights) > 0 {
		names := make([]string, 0, len(o.Weights))
		for n := range o.Weights {
			names = append(names, n)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = url.QueryEscape(n) + ":" + strconv.FormatFloat(o.Weights[n], 'g', -1, 64)
		}
		q.raw = append(q.raw, "weights="+strings.Join(parts, ","))
	}
	var out Results
	return out, c.get(ctx, "/v1/tests/"+url.PathEscape(test)+"/results", &q, &out)
}

// query builds a raw query string. List parameters are comma-joined with each
// element escaped, so a comma inside a name travels as %2C.
type query struct{ raw []string }

func (q *query) set(k, v string) {
	if v != "" {
		q.raw = append(q.raw, k+"="+url.QueryEscape(v))
	}
}

func (q *query) setList(k string, vs []string) {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = url.QueryEscape(v)
	}
	q.raw = append(q.raw, k+"="+strings.Join(parts, ","))
}

func (c *Client) get(ctx context.Context, path string, q *query, out any) error {
	u := c.base + path
	if q != nil && len(q.raw) > 0 {
		u += "?" + strings.Join(q.raw, "&")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("query api: build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("query api: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("query api: read %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("query api: decode %s: %w", path, err)
	}
	return nil
}
