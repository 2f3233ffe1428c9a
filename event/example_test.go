package event_test

import (
	"fmt"

	"github.com/manhattan-go/manhattan/event"
)

func ExampleEvent_AppendJSON() {
	e := event.Event{Type: event.TypeGoal, TS: 1764547200000000, VID: "3f9a1c0de5b7a2c4e6f80123456789abcdef0123",
		Name: "purchase", Value: "12.50", ValueType: "S", ValueFormat: "C"}
	fmt.Println(string(e.AppendJSON(nil)))
	back, err := event.Decode(e.AppendJSON(nil))
	fmt.Println(back == e, err)
	_, err = event.Decode([]byte(`{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value":"1e3"}`))
	fmt.Println(err)
	// Output:
	// {"v":1,"type":"goal","ts":1764547200.000000,"vid":"3f9a1c0de5b7a2c4e6f80123456789abcdef0123","site_id":0,"name":"purchase","value":"12.50","value_type":"S","value_format":"C"}
	// true <nil>
	// event: field value: not a decimal number: "1e3"
}
