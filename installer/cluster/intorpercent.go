package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// IntOrPercent is a count ("maxUnavailable: 2") or a percentage of a total
// ("maxUnavailable: 25%").
type IntOrPercent struct {
	// Value is the count, or the percentage when Percent is true.
	Value   int
	Percent bool
	// invalid is what the file said when it was neither (Validate reports
	// it with its field path, which a decoding error could not).
	invalid string
}

// Int is a count.
func Int(n int) *IntOrPercent { return &IntOrPercent{Value: n} }

// Percent is a percentage.
func Percent(p int) *IntOrPercent { return &IntOrPercent{Value: p, Percent: true} }

// String is the YAML form: "2" or "25%".
func (v IntOrPercent) String() string {
	if v.invalid != "" {
		return v.invalid
	}
	if v.Percent {
		return strconv.Itoa(v.Value) + "%"
	}
	return strconv.Itoa(v.Value)
}

// Of resolves v against total: a count as is, a percentage rounded down;
// never less than 1 (a roll-out must make progress) nor more than total
// (when total ≥ 1).
func (v IntOrPercent) Of(total int) int {
	n := v.Value
	if v.Percent {
		n = total * v.Value / 100
	}
	if total >= 1 && n > total {
		n = total
	}
	return max(n, 1)
}

// MarshalJSON writes a number or a "N%" string.
func (v IntOrPercent) MarshalJSON() ([]byte, error) {
	if v.invalid != "" {
		return []byte(v.invalid), nil // as read: a JSON string or number
	}
	if v.Percent {
		return json.Marshal(v.String())
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON reads a whole number or a "N%" string.
func (v *IntOrPercent) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		num, ok := strings.CutSuffix(s, "%")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || num == "" || num[0] == '+' || num[0] == '-' {
			*v = IntOrPercent{invalid: strconv.Quote(s)}
			return nil
		}
		*v = IntOrPercent{Value: n, Percent: true}
		return nil
	}
	var f float64
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("%s is neither a whole number nor a percentage such as 25%%", data)
	}
	if f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
		*v = IntOrPercent{invalid: string(data)}
		return nil
	}
	*v = IntOrPercent{Value: int(f)}
	return nil
}

// check reports a value that is not a positive count or a percentage in
// 1%–100%.
func (v IntOrPercent) check() error {
	switch {
	case v.invalid != "":
		return fmt.Errorf("%s is neither a whole number nor a percentage such as 25%%", v.invalid)
	case v.Percent && (v.Value < 1 || v.Value > 100):
		return fmt.Errorf("%s: a percentage must be 1%%–100%%", v)
	case !v.Percent && v.Value < 1:
		return fmt.Errorf("%s: must be at least 1 (a roll-out must make progress)", v)
	}
	return nil
}
