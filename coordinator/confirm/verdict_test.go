package confirm

import "testing"

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		need, failing, unknown int
		want                   Verdict
	}{
		{2, 2, 0, VerdictDown},
		{2, 3, 5, VerdictDown},
		{2, 1, 0, VerdictUp},      // one failure, nobody else can tip it
		{2, 0, 1, VerdictUp},      // one unknown alone cannot make two failures
		{2, 1, 1, VerdictUnknown}, // the unknown could tip it
		{2, 0, 2, VerdictUnknown},
		{1, 0, 0, VerdictUp},
		{1, 0, 1, VerdictUnknown},
		{1, 1, 0, VerdictDown},
	} {
		if got := Decide(tc.need, tc.failing, tc.unknown); got != tc.want {
			t.Errorf("Decide(need %d, failing %d, unknown %d) = %s, want %s", tc.need, tc.failing, tc.unknown, got, tc.want)
		}
	}
}
