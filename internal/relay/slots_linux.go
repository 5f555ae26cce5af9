package relay

// A slotTable hands out the slots by which epoll events find their pair:
// an event carries the slot and the generation it was registered with,
// since a slot is used again once freed, and an event still in flight for
// an earlier pair in it must be told apart (and dropped). The caller
// guards it.
type slotTable[T comparable] struct {
	items []T
	free  []int32
	gen   int32
}

// put gives v a slot, and the generation to register its descriptors with.
func (t *slotTable[T]) put(v T) (slot, gen int32) {
	if n := len(t.free); n > 0 {
		slot = t.free[n-1]
		t.free = t.free[:n-1]
		t.items[slot] = v
	} else {
		slot = int32(len(t.items))
		t.items = append(t.items, v)
	}
	t.gen++
	return slot, t.gen
}

// release frees slot for a later pair.
func (t *slotTable[T]) release(slot int32) {
	var zero T
	t.items[slot] = zero
	t.free = append(t.free, slot)
}
