package main

import "net/url"

// redact hides a password in a URL for logs and messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
