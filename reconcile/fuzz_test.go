package reconcile

import (
	"bytes"
	"testing"

	"github.com/manhattan-go/manhattan/event"
)

// FuzzState: any input either fails to decode with an error or decodes to a
// state whose encoding is canonical and stable.
func FuzzState(f *testing.F) {
	e, err := New(propConfig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Add([]byte{stateVersion, 0, 0, 0, 0, 0, 0, 0})
	st, out := NewState(), NewOutput()
	for _, ev := range []*event.Event{goal(1, "cart", "2.5"), page(2), split(3, "t", "A")} {
		e.Apply(st, ev, true, out)
	}
	b, _ := st.MarshalBinary() // a bot with a queue
	f.Add(b)
	e.Apply(st, pixel(4), true, out) // confirmed, with keys, variants, a complex goal
	b, _ = st.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		st := NewState()
		if err := st.UnmarshalBinary(data); err != nil {
			return
		}
		b1, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		// Varints may arrive non-minimal; the re-encoding is canonical.
		st2 := NewState()
		if err := st2.UnmarshalBinary(b1); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if b2, _ := st2.MarshalBinary(); !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable:\n%x\n%x", b1, b2)
		}
		// The decoded state must be usable.
		e.Apply(st, goal(10, "buy", "1"), true, NewOutput())
		e.Apply(st, pixel(11), true, NewOutput())
	})
}
