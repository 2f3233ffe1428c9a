// Package benchpage is the HTML page the producer's benchmarks serve, so the
// Go benchmark and the wrk load benchmark (producer/loadbench) measure the
// middleware on the same page.
package benchpage

import (
	"fmt"
	"strings"
)

// HTML is a ~10 KiB shop page with a head, links and a closing </body>.
var HTML = func() []byte {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>\n")
	b.WriteString("<link rel=\"stylesheet\" href=\"/static/site.css\"><script src=\"/static/app.js\" defer></script></head>\n<body>\n")
	b.WriteString("<nav><a href=\"/\">Home</a> <a href=\"/products\">Products</a> <a href=\"/cart\">Cart</a></nav>\n<main>\n")
	for i := 0; b.Len() < 10<<10-200; i++ {
		fmt.Fprintf(&b, "<div class=\"product\"><h2><a href=\"/p/%d\">Product %d</a></h2><p>A fine product, number %d, &amp; more.</p><span class=\"price\">$%d.99</span></div>\n", i, i, i, i)
	}
	b.WriteString("</main>\n<footer>&copy; 2026</footer>\n</body>\n</html>\n")
	return []byte(b.String())
}()
