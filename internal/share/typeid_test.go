package share

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

type item struct{ N int }

func TestTypeID(t *testing.T) {
	assert.Equal(t, "int", TypeID[int]())
	assert.Equal(t, "[10]int32", TypeID[[10]int32]())
	assert.Equal(t, "[]float64", TypeID[[]float64]())
	assert.Equal(t, "github.com/mproc-go/mproc/internal/share.item", TypeID[item]())
	assert.NotEqual(t, TypeID[int](), TypeID[int64]())
}
