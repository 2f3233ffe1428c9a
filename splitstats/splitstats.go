// Package splitstats holds the statistics an A/B results page shows: Wilson
// score intervals, the two-proportion z-test, the Bayesian chance to beat the
// control and the sample-ratio-mismatch check. All functions are pure; they
// take visitor and conversion counts and return float64s.
package splitstats

import (
	"errors"
	"fmt"
	"math"
)

// Z95 is the standard normal quantile for a two-sided 95% interval.
const Z95 = 1.959963984540054

// ErrNoData is returned when a statistic is undefined for the counts given
// (no visitors, more conversions than visitors, a zero variance, …).
var ErrNoData = errors.New("splitstats: not defined for these counts")

func checkCounts(conversions, visitors int64) error {
	if visitors <= 0 || conversions < 0 || conversions > visitors {
		return fmt.Errorf("%w: %d conversions of %d visitors", ErrNoData, conversions, visitors)
	}
	return nil
}

// Wilson returns the Wilson score interval for conversions out of visitors at
// the normal quantile z (Z95 for 95%). Unlike the normal-approximation
// interval it stays inside [0, 1] and is sensible for 0 or all conversions.
func Wilson(conversions, visitors int64, z float64) (low, high float64, err error) {
	if err := checkCounts(conversions, visitors); err != nil {
		return 0, 0, err
	}
	n := float64(visitors)
	p := float64(conversions) / n
	z2 := z * z
	den := 1 + z2/n
	centre := (p + z2/(2*n)) / den
	half := z / den * math.Sqrt(p*(1-p)/n+z2/(4*n*n))
	low, high = centre-half, centre+half
	// Clamp rounding noise at the ends (e.g. -1e-17 for 0 conversions).
	return math.Max(0, low), math.Min(1, high), nil
}

// ZTest returns the two-sided p-value of the pooled two-proportion z-test of
// treatment (c2 of n2) against control (c1 of n1).
func ZTest(c1, n1, c2, n2 int64) (float64, error) {
	if err := checkCounts(c1, n1); err != nil {
		return 0, err
	}
	if err := checkCounts(c2, n2); err != nil {
		return 0, err
	}
	p1 := float64(c1) / float64(n1)
	p2 := float64(c2) / float64(n2)
	pool := float64(c1+c2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		// Both all-converted or both never-converted: no evidence of a difference.
		return 0, fmt.Errorf("%w: zero variance", ErrNoData)
	}
	z := (p2 - p1) / se
	return math.Erfc(math.Abs(z) / math.Sqrt2), nil
}

// ChanceToBeat returns P(p2 > p1) where p1 ~ Beta(1+c1, 1+n1−c1) (control)
// and p2 ~ Beta(1+c2, 1+n2−c2) (treatment): the posteriors under uniform
// Beta(1,1) priors. It is exact (Evan Miller's closed form, "Formulas for
// Bayesian A/B Testing"), summed over whichever of the four parameters is
// smallest.
func ChanceToBeat(c1, n1, c2, n2 int64) (float64, error) {
	if err := checkCounts(c1, n1); err != nil {
		return 0, err
	}
	if err := checkCounts(c2, n2); err != nil {
		return 0, err
	}
	a1, b1 := float64(1+c1), float64(1+n1-c1)
	a2, b2 := float64(1+c2), float64(1+n2-c2)
	// P(p2 > p1) = h(a1,b1,a2,b2) sums a2 terms. By symmetry:
	// 1 − P(p1 > p2) sums a1 terms; with q = 1−p ~ Beta(b, a),
	// P(p2 > p1) = P(q1 > q2) sums b1 terms and 1 − P(q2 > q1) sums b2 terms.
	switch m := math.Min(math.Min(a1, a2), math.Min(b1, b2)); m {
	case a2:
		return clamp01(betaGreater(a1, b1, a2, b2)), nil
	case a1:
		return clamp01(1 - betaGreater(a2, b2, a1, b1)), nil
	case b1:
		return clamp01(betaGreater(b2, a2, b1, a1)), nil
	default:
		return clamp01(1 - betaGreater(b1, a1, b2, a2)), nil
	}
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

// betaGreater returns P(Y > X) for X ~ Beta(aX, bX), Y ~ Beta(aY, bY) with
// integer aY:
//
//	Σ_{i=0}^{aY−1} B(aX+i, bX+bY) / ((bY+i) B(1+i, bY) B(aX, bX))
//
// Consecutive terms have the ratio (aX+i)(bY+i) / ((aX+bX+bY+i)(i+1)), so the
// sum runs on multiplications, rescaled to stay in float64 range; the first
// term comes from lgamma.
func betaGreater(aX, bX, aY, bY float64) float64 {
	logT0 := logBeta(aX, bX+bY) - logBeta(aX, bX) // B(1, bY) = 1/bY cancels bY
	const big = 1e280
	t, sum, logScale := 1.0, 0.0, 0.0
	n := int64(aY)
	for i := int64(0); i < n; i++ {
		sum += t
		fi := float64(i)
		r := (aX + fi) * (bY + fi) / ((aX + bX + bY + fi) * (fi + 1))
		t *= r
		if t > big {
			t /= big
			sum /= big
			logScale += math.Log(big)
		}
		// Terms are unimodal: once falling and negligible, the rest adds nothing.
		if r < 1 && t < sum*1e-18 {
			break
		}
	}
	return math.Exp(math.Log(sum) + logScale + logT0)
}

func logBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// SRM is a sample-ratio-mismatch check: the chi-square goodness of fit of the
// observed visitors per population against the expected weights.
type SRM struct {
	ChiSquare float64
	DF        int
	PValue    float64
}

// SampleRatioMismatch tests observed counts against weights (same order,
// weights > 0, any scale). A small p-value (conventionally < 0.001) means the
// split is not assigning visitors as configured.
func SampleRatioMismatch(observed []int64, weights []float64) (SRM, error) {
	if len(observed) != len(weights) {
		return SRM{}, fmt.Errorf("splitstats: %d observed counts but %d weights", len(observed), len(weights))
	}
	if len(observed) < 2 {
		return SRM{}, fmt.Errorf("%w: need at least 2 populations", ErrNoData)
	}
	var total int64
	var wsum float64
	for i, o := range observed {
		if o < 0 {
			return SRM{}, fmt.Errorf("splitstats: negative count %d", o)
		}
		if !(weights[i] > 0) || math.IsInf(weights[i], 0) {
			return SRM{}, fmt.Errorf("splitstats: weight %v is not a positive number", weights[i])
		}
		total += o
		wsum += weights[i]
	}
	if total == 0 {
		return SRM{}, fmt.Errorf("%w: no visitors", ErrNoData)
	}
	var chi float64
	for i, o := range observed {
		e := float64(total) * weights[i] / wsum
		d := float64(o) - e
		chi += d * d / e
	}
	df := len(observed) - 1
	return SRM{ChiSquare: chi, DF: df, PValue: ChiSquareSF(chi, df)}, nil
}

// ChiSquareSF is the survival function (upper tail) of the chi-square
// distribution with df degrees of freedom: Q(df/2, x/2).
func ChiSquareSF(x float64, df int) float64 {
	if x <= 0 {
		return 1
	}
	return gammaQ(float64(df)/2, x/2)
}

// gammaQ is the regularized upper incomplete gamma function Q(a, x), by the
// series for x < a+1 and Lentz's continued fraction otherwise (Numerical
// Recipes §6.2).
func gammaQ(a, x float64) float64 {
	const (
		eps   = 1e-15
		tiny  = 1e-300
		iters = 10000
	)
	lg, _ := math.Lgamma(a)
	lpre := -x + a*math.Log(x) - lg
	if x < a+1 {
		ap, sum, del := a, 1/a, 1/a
		for i := 0; i < iters; i++ {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*eps {
				break
			}
		}
		return clamp01(1 - sum*math.Exp(lpre))
	}
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < iters; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return clamp01(math.Exp(lpre) * h)
}
