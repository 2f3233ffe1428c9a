package store

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/schema"
)

// One set of SQL texts serves both connections. Parameters are written as
// ClickHouse query parameters {name:Type}: chDB binds them server-side; for
// the native connection (ClickHouse 18.16 has no query parameters) bindNative
// rewrites them to clickhouse-go's @name placeholders, which the driver fills
// with its own escaping. Table names are qualified with {db}, replaced by the
// validated, quoted database name.

// Counter reads are built from fixed fragments: the WHERE clause holds a
// condition only for each filter that is set (values still bound as
// parameters), because a catch-all such as "empty parameter OR goal = …"
// keeps ClickHouse 18.16 from narrowing the scan by the primary key.
var (
	sqlCounter     = `SELECT toInt64(sum(count)), sum(value) FROM {db}.counters`
	sqlSeries      = `SELECT bucket, toInt64(sum(count)), sum(value) FROM {db}.counters`
	sqlSeriesGroup = `
GROUP BY bucket ORDER BY bucket`
	sqlPopulations      = `SELECT population, toInt64(sum(count)), sum(value) FROM {db}.counters`
	sqlPopulationsGroup = `
GROUP BY population ORDER BY population`

	// Without a kind, every kind but the offset marks: an IN list over the
	// key's first column, which the primary key can use (!= cannot, on 18.16).
	sqlAnyCountedKind = `kind IN ('` + reconcile.KindConversion.String() + `', '` +
		reconcile.KindImpression.String() + `', '` + reconcile.KindVariantConversion.String() + `')`

	sqlHWC = `SELECT toInt64(sum(count)), toInt64(count()) FROM {db}.counters
WHERE kind = 'offset' AND partition = {partition:Int32}`

	sqlHWS = `SELECT toInt64(max(version)), toInt64(count()) FROM {db}.visitor_state
WHERE vid = {vid:String}`

	// IN (SELECT arrayJoin(…)) because 18.16 refuses "IN [array]". Not
	// PREWHERE: 18.16 would read less with it, but today's ClickHouse
	// then stops using the primary key for the IN and reads every granule.
	sqlLoadStates = `SELECT vid, argMax(data, version) FROM {db}.visitor_state
WHERE vid IN (SELECT arrayJoin({vids:Array(String)}))
GROUP BY vid`

	// Ties on ts are broken by type then format so every reader agrees.
	sqlGoalsSelect = `SELECT name, argMin(value_type, (ts, value_type, value_format)), argMin(value_format, (ts, value_type, value_format)), toInt64(min(ts))
FROM {db}.goals`
	sqlGoals = sqlGoalsSelect + `
GROUP BY name ORDER BY name`
	sqlGoal = sqlGoalsSelect + `
WHERE name = {name:String}
GROUP BY name`

	sqlTestsSelect = `SELECT name, toInt64(min(first)), toInt64(max(last)), groupUniqArray(population)
FROM {db}.tests`
	sqlTests = sqlTestsSelect + `
GROUP BY name ORDER BY max(last) DESC, name`
	sqlTest = sqlTestsSelect + `
WHERE name = {name:String}
GROUP BY name`

	sqlCreateDB      = `CREATE DATABASE IF NOT EXISTS {db}`
	sqlCreateVersion = `CREATE TABLE IF NOT EXISTS {db}.schema_version (version UInt32, applied_at DateTime DEFAULT now()) ENGINE = MergeTree() ORDER BY version`
	sqlSchemaVersion = `SELECT toInt64(max(version)), toInt64(count()) FROM {db}.schema_version`
)

// Insert column lists with their types (chDB's insert parses the rows with
// format(RowBinary, structure, …)), in the order the rows are encoded.
var (
	colsEvents = []string{"partition Int32", "offset Int64", "type String", "ts Int64", "vid String", "site_id Int64",
		"ip String", "method String", "url String", "user_agent String", "referer String", "name String", "value String",
		"value_type String", "value_format String", "test String", "selected String"}
	colsCounters = []string{"kind String", "site Int64", "goal String", "test String", "population String", "rollup String",
		"bucket String", "partition Int32", "count Int64", "value Decimal(38, 10)"}
	colsStates  = []string{"vid String", "version Int64", "data String"}
	colsGoals   = []string{"name String", "value_type String", "value_format String", "ts Int64"}
	colsTests   = []string{"name String", "population String", "first Int64", "last Int64"}
	colsVersion = []string{"version UInt32"}
)

// colNames drops the types of a column list.
func colNames(cols []string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i], _, _ = strings.Cut(c, " ")
	}
	return strings.Join(names, ", ")
}

// dbNameRe is deliberately strict: the name is spliced into SQL (quoted).
var dbNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func quoteDB(name string) (string, error) {
	if !dbNameRe.MatchString(name) {
		return "", fmt.Errorf("store: invalid database name %q: want letters, digits and _, not starting with a digit, at most 64", name)
	}
	return "`" + name + "`", nil
}

// withDB qualifies a SQL text's tables.
func withDB(sql, quotedDB string) string {
	return strings.ReplaceAll(sql, schema.DBPlaceholder, quotedDB)
}

// paramRe matches a {name:Type} query parameter. The SQL texts above never
// hold one inside a string literal, so no lexer is needed.
var paramRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}`)

// nativeSQL rewrites {name:Type} to @name for clickhouse-go's client-side
// binding and lists the parameter names with their types.
func nativeSQL(sql string) (string, map[string]string) {
	types := map[string]string{}
	out := paramRe.ReplaceAllStringFunc(sql, func(m string) string {
		sub := paramRe.FindStringSubmatch(m)
		types[sub[1]] = sub[2]
		return "@" + sub[1]
	})
	return out, types
}

// param is one query parameter value: string, int64, int32, uint8 or []string.
type param struct {
	name  string
	value any
}

// counterSQL returns head, the WHERE clause of q, then tail, with the
// parameters the clause binds. Each condition is a fixed fragment, present
// only when its filter is set; values are always parameters. from and to
// bound the bucket (Series); "" leaves that end open.
func counterSQL(head string, q CounterQuery, from, to, tail string) (string, []param) {
	var b strings.Builder
	b.Grow(len(head) + len(tail) + 256)
	b.WriteString(head)
	params := make([]param, 0, 8)
	if q.Kind != 0 {
		b.WriteString("\nWHERE kind = {kind:String}")
		params = append(params, param{"kind", q.Kind.String()})
	} else {
		b.WriteString("\nWHERE " + sqlAnyCountedKind)
	}
	rollup := q.Rollup
	if rollup == "" {
		rollup = "all"
	}
	b.WriteString("\n  AND rollup = {rollup:String}")
	params = append(params, param{"rollup", rollup})
	cond := func(set bool, fragment string, p param) {
		if set {
			b.WriteString("\n  AND " + fragment)
			params = append(params, p)
		}
	}
	cond(q.Goal != "", "goal = {goal:String}", param{"goal", q.Goal})
	cond(q.Test != "", "test = {test:String}", param{"test", q.Test})
	cond(q.Population != "", "population = {population:String}", param{"population", q.Population})
	cond(q.Bucket != "" || q.BucketSet, "bucket = {bucket:String}", param{"bucket", q.Bucket})
	cond(from != "", "bucket >= {from:String}", param{"from", from})
	cond(to != "", "bucket <= {to:String}", param{"to", to})
	if q.Site != nil {
		cond(true, "site = {site:Int64}", param{"site", *q.Site})
	}
	b.WriteString(tail)
	return b.String(), params
}
