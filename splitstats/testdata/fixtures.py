#!/usr/bin/env python3
"""Generates fixtures.json: worked examples for package splitstats, computed
independently of the Go code with Python's standard library only.

- Wilson: the textbook score-interval formula.
- z-test: pooled two-proportion z, p = erfc(|z|/sqrt(2)).
- Chance to beat control: Evan Miller's sum over alpha_B with lgamma per term
  (no recurrence, no symmetry tricks), cross-checked against a 200k-draw
  Monte Carlo with random.betavariate (seed 1); the check must agree to 0.005.
- SRM: chi-square statistic and its upper tail from the closed forms for
  integer degrees of freedom (even: exp(-x/2) * sum (x/2)^j/j!; odd: erfc plus
  a finite series), not the continued fraction the Go code uses.

Run: python3 splitstats/testdata/fixtures.py > splitstats/testdata/fixtures.json
"""
import json, math, random

Z = 1.959963984540054

def wilson(c, n):
    p = c / n
    den = 1 + Z*Z/n
    centre = (p + Z*Z/(2*n)) / den
    half = Z*math.sqrt(p*(1-p)/n + Z*Z/(4*n*n)) / den
    return max(0.0, centre-half), min(1.0, centre+half)

def ztest(c1, n1, c2, n2):
    p1, p2 = c1/n1, c2/n2
    pool = (c1+c2)/(n1+n2)
    se = math.sqrt(pool*(1-pool)*(1/n1+1/n2))
    return math.erfc(abs((p2-p1)/se)/math.sqrt(2))

def lbeta(a, b):
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a+b)

def chance(c1, n1, c2, n2):
    aA, bA, aB, bB = 1+c1, 1+n1-c1, 1+c2, 1+n2-c2
    total = 0.0
    for i in range(aB):
        total += math.exp(lbeta(aA+i, bA+bB) - math.log(bB+i) - lbeta(1+i, bB) - lbeta(aA, bA))
    return total

def chance_mc(c1, n1, c2, n2, draws=200000):
    rnd = random.Random(1)
    win = 0
    for _ in range(draws):
        if rnd.betavariate(1+c2, 1+n2-c2) > rnd.betavariate(1+c1, 1+n1-c1):
            win += 1
    return win / draws

def chi2_sf(x, df):
    h = x / 2
    if df % 2 == 0:
        return math.exp(-h) * sum(h**j / math.factorial(j) for j in range(df//2))
    # odd: Q(1/2, h) = erfc(sqrt h); Q(k+1/2) = Q(k-1/2) + h^(k-1/2) e^-h / Gamma(k+1/2)
    q = math.erfc(math.sqrt(h))
    for k in range(1, (df-1)//2 + 1):
        q += math.exp((k-0.5)*math.log(h) - h - math.lgamma(k+0.5))
    return q

def srm(obs, w):
    total, ws = sum(obs), sum(w)
    chi = sum((o - total*wi/ws)**2 / (total*wi/ws) for o, wi in zip(obs, w))
    return chi, len(obs)-1, chi2_sf(chi, len(obs)-1)

pairs = [  # (control conversions, visitors, treatment conversions, visitors)
    (10, 100, 15, 100),
    (0, 20, 3, 20),
    (120, 1000, 150, 1000),
    (500, 10000, 560, 10200),
    (45, 50, 40, 50),
    (1, 1, 0, 1),
]
out = {"about": __doc__.strip().splitlines()[0], "wilson": [], "ztest": [], "chance": [], "srm": []}
for c, n in [(0, 10), (10, 10), (1, 2), (10, 100), (123, 4567), (5000, 100000)]:
    lo, hi = wilson(c, n)
    out["wilson"].append({"conversions": c, "visitors": n, "low": lo, "high": hi})
for c1, n1, c2, n2 in pairs:
    out["ztest"].append({"c1": c1, "n1": n1, "c2": c2, "n2": n2, "p": ztest(c1, n1, c2, n2)})
    exact = chance(c1, n1, c2, n2)
    mc = chance_mc(c1, n1, c2, n2)
    assert abs(exact - mc) < 0.005, (c1, n1, c2, n2, exact, mc)
    out["chance"].append({"c1": c1, "n1": n1, "c2": c2, "n2": n2, "p": exact, "monte_carlo_200k": mc})
for obs, w in [([1000, 1000], [1, 1]), ([1000, 1100], [1, 1]), ([5000, 5200, 4900], [1, 1, 1]),
               ([300, 700], [30, 70]), ([480, 260, 260], [50, 25, 25]), ([100, 120, 90, 110, 95], [1, 1, 1, 1, 1])]:
    chi, df, p = srm(obs, w)
    out["srm"].append({"observed": obs, "weights": w, "chi_square": chi, "df": df, "p": p})
print(json.dumps(out, indent=1))
