// Package schema holds the ClickHouse DDL (numbered migrations, applied in
// order by the store) and the JSON Schema of the event records.
package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.sql
var sqlFiles embed.FS

// DBPlaceholder stands for the quoted database name in the DDL texts.
const DBPlaceholder = "{db}"

// Migration is one numbered DDL file: NNN_name.sql.
type Migration struct {
	Version    int
	Name       string
	Statements []string // without the trailing ';', comments stripped
}

// Migrations returns the migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(sqlFiles, ".")
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("schema: %s: file name must be NNN_name.sql", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("schema: %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		text, err := sqlFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("schema: %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: rest, Statements: Split(string(text))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Split cuts a DDL file into statements at ';' ending a line, dropping "--"
// comment lines and blank statements. The DDL files keep ';' out of literals
// and comments so this stays simple.
func Split(text string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || trimmed == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			stmts = append(stmts, s)
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}
