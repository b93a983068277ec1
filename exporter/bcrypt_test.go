package exporter

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func mustBcrypt(tb testing.TB, password string) string {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	return string(h)
}
