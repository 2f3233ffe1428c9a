package store

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/manhattan-go/manhattan/schema"
)

// One set of SQL texts serves both connections. Parameters are written as
// ClickHouse query parameters {name:Type}: chDB binds them server-side; for
// the native connection (ClickHouse 18.16 has no query parameters) bindNative
// rewrites them to clickhouse-go's @name placeholders, which the driver fills
// with its own escaping. Table names are qualified with {db}, replaced by the
// validated, quoted database name.

// counterFilter is the WHERE clause of every counter read: an empty
// parameter means "not filtered", except rollup (defaulted by the caller)
// and kind (empty means every kind but the offset marks).
const counterFilter = `
WHERE (({kind:String} = '' AND kind != 'offset') OR kind = {kind:String})
  AND ({goal:String} = '' OR goal = {goal:String})
  AND ({test:String} = '' OR test = {test:String})
  AND ({population:String} = '' OR population = {population:String})
  AND rollup = {rollup:String}
  AND ({bucket:String} = '' OR bucket = {bucket:String})
  AND ({all_sites:UInt8} = 1 OR site = {site:Int64})`

var (
	sqlCounter = `SELECT toInt64(sum(count)), sum(value) FROM {db}.counters` + counterFilter

	sqlSeries = `SELECT bucket, toInt64(sum(count)), sum(value) FROM {db}.counters` + counterFilter + `
  AND ({from:String} = '' OR bucket >= {from:String})
  AND ({to:String} = '' OR bucket <= {to:String})
GROUP BY bucket ORDER BY bucket`

	sqlPopulations = `SELECT population, toInt64(sum(count)), sum(value) FROM {db}.counters` + counterFilter + `
GROUP BY population ORDER BY population`

	sqlHWC = `SELECT toInt64(sum(count)), toInt64(count()) FROM {db}.counters
WHERE kind = 'offset' AND partition = {partition:Int32}`

	sqlHWS = `SELECT toInt64(max(version)), toInt64(count()) FROM {db}.visitor_state
WHERE vid = {vid:String}`

	// IN (SELECT arrayJoin(…)) because 18.16 refuses "IN [array]".
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

func counterParams(q CounterQuery) []param {
	rollup := q.Rollup
	if rollup == "" {
		rollup = "all"
	}
	kind := ""
	if q.Kind != 0 {
		kind = q.Kind.String()
	}
	var allSites uint8 = 1
	var site int64
	if q.Site != nil {
		allSites, site = 0, *q.Site
	}
	return []param{
		{"kind", kind}, {"goal", q.Goal}, {"test", q.Test}, {"population", q.Population},
		{"rollup", rollup}, {"bucket", q.Bucket}, {"all_sites", allSites}, {"site", site},
	}
}
