package client

import "github.com/shopspring/decimal"

// The wire types of the query API. The server encodes exactly these, so a
// caller needs only this package.

// Error is the body of every 4xx/5xx answer.
type Error struct {
	Error string `json:"error"`
}

// Goal is one entry of GET /v1/goals.
type Goal struct {
	Name        string `json:"name"`
	ValueType   string `json:"value_type"`
	ValueFormat string `json:"value_format"`
}

// Goals is GET /v1/goals.
type Goals struct {
	Goals []Goal `json:"goals"`
}

// GoalCount is GET /v1/goals/{goal}: visitors converted and the goal's value
// under the filters. Value is exact (a decimal string on the wire).
type GoalCount struct {
	Goal        string          `json:"goal"`
	Count       int64           `json:"count"`
	Value       decimal.Decimal `json:"value"`
	ValueType   string          `json:"value_type"`
	ValueFormat string          `json:"value_format"`
}

// Test is one entry of GET /v1/tests. Times are Unix seconds.
type Test struct {
	Name           string   `json:"name"`
	FirstTimestamp int64    `json:"first_timestamp"`
	LastTimestamp  int64    `json:"last_timestamp"`
	Populations    []string `json:"populations"`
}

// Tests is GET /v1/tests, newest last impression first.
type Tests struct {
	Tests []Test `json:"tests"`
}

// PopulationImpressions is one population of GET /v1/tests/{test}.
type PopulationImpressions struct {
	Population  string `json:"population"`
	Impressions int64  `json:"impressions"`
}

// TestDetail is GET /v1/tests/{test}.
type TestDetail struct {
	Test           string                  `json:"test"`
	FirstTimestamp int64                   `json:"first_timestamp"`
	LastTimestamp  int64                   `json:"last_timestamp"`
	Populations    []PopulationImpressions `json:"populations"`
}

// Results is GET /v1/tests/{test}/results.
type Results struct {
	Test        string             `json:"test"`
	Goals       []string           `json:"goals"`
	Control     string             `json:"control"`
	Populations []PopulationResult `json:"populations"`
	// SRM is present when weights were given.
	SRM *SRM `json:"srm,omitempty"`
}

// PopulationResult is one population of Results: Values holds value(goal,
// test, population) for each goal, in the order of Results.Goals.
type PopulationResult struct {
	Population  string            `json:"population"`
	Impressions int64             `json:"impressions"`
	Values      []decimal.Decimal `json:"values"`
	Stats       Stats             `json:"stats"`
}

// Stats are the A/B statistics of one population, per goal in the order of
// Results.Goals. Visitors are the population's impressions.
type Stats struct {
	Visitors int64       `json:"visitors"`
	Control  bool        `json:"control"`
	Goals    []GoalStats `json:"goals"`
}

// GoalStats is one goal of Stats. A statistic that is undefined for the counts
// (no visitors, the control population itself, zero variance) is null.
type GoalStats struct {
	Goal           string   `json:"goal"`
	Conversions    int64    `json:"conversions"`
	ConversionRate *float64 `json:"conversion_rate"`
	// CILow and CIHigh bound the 95% Wilson score interval of the rate.
	CILow  *float64 `json:"ci_low"`
	CIHigh *float64 `json:"ci_high"`
	// Uplift is (rate − control rate) / control rate.
	Uplift *float64 `json:"uplift"`
	// PValue is the two-sided pooled two-proportion z-test against the control.
	PValue *float64 `json:"p_value"`
	// ChanceToBeatControl is P(rate > control rate) under Beta(1,1) priors, exact.
	ChanceToBeatControl *float64 `json:"chance_to_beat_control"`
}

// SRM is the sample-ratio-mismatch check of the impressions against the
// expected weights: chi-square goodness of fit.
type SRM struct {
	Weights   []PopulationWeight `json:"weights"`
	ChiSquare *float64           `json:"chi_square"`
	DF        int                `json:"df"`
	PValue    *float64           `json:"p_value"`
}

// PopulationWeight is one expected weight.
type PopulationWeight struct {
	Population string  `json:"population"`
	Weight     float64 `json:"weight"`
}

// Series is GET /v1/goals/{goal}/series: one point per bucket present in
// the range, in bucket order.
type Series struct {
	Goal   string  `json:"goal"`
	Rollup string  `json:"rollup"`
	From   string  `json:"from"`
	To     string  `json:"to"`
	Points []Point `json:"points"`
}

// Point is one bucket of a Series.
type Point struct {
	Bucket string          `json:"bucket"`
	Count  int64           `json:"count"`
	Value  decimal.Decimal `json:"value"`
}
