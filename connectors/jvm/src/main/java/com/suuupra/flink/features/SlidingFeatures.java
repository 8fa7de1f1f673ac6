package com.suuupra.flink.features;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * Sliding-window features per partition key (a user, a device), kept current on every event.
 *
 * <pre>SELECT * FROM sliding_features(
 *     input => TABLE activity PARTITION BY user_id,
 *     spec => 'count:payment:300000,sum:payment:3600000,distinct:instrument:86400000,first:*:0',
 *     uid => 'user-payments')</pre>
 *
 * The input has {@code event_time} (epoch ms), {@code kind} (what happened: 'payment', 'view', ...),
 * {@code amount} (BIGINT, summed by {@code sum}) and {@code item} (STRING, counted once by {@code distinct}).
 * Each entry of the spec is {@code aggregate:kind:window_ms}, with aggregates {@code count}, {@code sum},
 * {@code distinct} over the events of that kind (or {@code *}) in the window, and {@code first}, the earliest event
 * time ever seen of that kind (window ignored). The output row has {@code as_of}, the newest event time seen for the
 * key, {@code version}, the number of events seen for the key, and {@code vals}, one value per spec entry, in order.
 *
 * <p>A window of length W covers the events with {@code as_of - W < event_time <= as_of}. No watermark is involved:
 * every event is folded in whenever it arrives, so the values depend only on the set of events seen, never on their
 * order; an out-of-order or late event updates the windows it falls into (a late event older than every window still
 * counts for {@code first} and {@code version}). Events older than the longest window leave the state.
 */
@DataTypeHint("ROW<as_of BIGINT, version BIGINT, vals ARRAY<BIGINT>>")
public class SlidingFeatures extends ProcessTableFunction<Row> {
    private static final long serialVersionUID = 1L;

    /**
     * The key's events inside the longest window, as parallel primitive arrays: Flink converts and hashes the state on
     * every call, and arrays of numbers cost a copy where arrays of strings cost an object per element. An event's
     * kind is its position among the spec's kinds (-1: a kind no entry names, which only {@code *} counts) and its
     * item a 64-bit hash ({@link #itemHash}; 0: none), which is all {@code distinct} needs.
     */
    public static class Activity {
        public long asOf = Long.MIN_VALUE;
        public long version;
        public long[] first = new long[0];
        public long[] times = new long[0];
        public int[] kinds = new int[0];
        public long[] amounts = new long[0];
        public long[] items = new long[0];
    }

    /** The kind of an aggregate over every kind; an event of a kind no entry names is -1. */
    private static final int ANY = -2;

    private transient String parsedSpec;
    private transient List<Aggregate> aggregates;
    private transient List<String> kindNames;
    private transient long longestWindow;

    /** {@code kind} is the position of the aggregate's kind in {@link #kindNames}, or {@link #ANY}. */
    private record Aggregate(String function, int kind, long windowMs) {
        boolean matches(int eventKind) {
            return kind == ANY || kind == eventKind;
        }
    }

    public void eval(
            @StateHint Activity state,
            @ArgumentHint(name = "input", value = ArgumentTrait.SET_SEMANTIC_TABLE) Row input,
            @ArgumentHint(name = "spec") String spec) {
        parse(spec);
        long time = input.<Long>getFieldAs("event_time");
        int kind = kindNames.indexOf(input.<String>getFieldAs("kind"));
        Long amount = input.getFieldAs("amount");
        long item = itemHash(input.getFieldAs("item"));

        if (state.first.length != aggregates.size()) {
            state.first = new long[aggregates.size()];
            java.util.Arrays.fill(state.first, Long.MAX_VALUE);
        }
        for (int i = 0; i < aggregates.size(); i++) {
            if (aggregates.get(i).matches(kind)) {
                state.first[i] = Math.min(state.first[i], time);
            }
        }
        state.version++;
        state.asOf = Math.max(state.asOf, time);
        long horizon = state.asOf - longestWindow;

        // Keep what can still fall into a window: the events newer than the horizon, this one included.
        int size = state.times.length;
        int kept = 0;
        for (int i = 0; i < size; i++) {
            if (state.times[i] > horizon) {
                kept++;
            }
        }
        boolean add = time > horizon;
        int newSize = kept + (add ? 1 : 0);
        if (add || kept != size) {
            long[] times = new long[newSize];
            int[] kinds = new int[newSize];
            long[] amounts = new long[newSize];
            long[] items = new long[newSize];
            int at = 0;
            for (int i = 0; i < size; i++) {
                if (state.times[i] > horizon) {
                    times[at] = state.times[i];
                    kinds[at] = state.kinds[i];
                    amounts[at] = state.amounts[i];
                    items[at++] = state.items[i];
                }
            }
            if (add) {
                times[at] = time;
                kinds[at] = kind;
                amounts[at] = amount == null ? 0L : amount;
                items[at] = item;
            }
            state.times = times;
            state.kinds = kinds;
            state.amounts = amounts;
            state.items = items;
        }

        Long[] values = new Long[aggregates.size()];
        for (int a = 0; a < aggregates.size(); a++) {
            values[a] = evaluate(state, a);
        }
        collect(Row.of(state.asOf, state.version, values));
    }

    private Long evaluate(Activity state, int index) {
        Aggregate aggregate = aggregates.get(index);
        if ("first".equals(aggregate.function())) {
            return state.first[index] == Long.MAX_VALUE ? null : state.first[index];
        }
        long from = state.asOf - aggregate.windowMs();
        long count = 0;
        long sum = 0;
        boolean distinct = "distinct".equals(aggregate.function());
        long[] seen = distinct ? new long[Integer.highestOneBit(Math.max(2, state.times.length) * 2) * 2] : null;
        for (int i = 0; i < state.times.length; i++) {
            if (state.times[i] > from && aggregate.matches(state.kinds[i])) {
                sum += state.amounts[i];
                if (!distinct) {
                    count++;
                } else if (state.items[i] != 0 && addTo(seen, state.items[i])) {
                    count++;
                }
            }
        }
        return "sum".equals(aggregate.function()) ? sum : count;
    }

    /** Adds a non-zero value to an open-addressing set (0 marks a free slot); true if it was not there. */
    private static boolean addTo(long[] set, long value) {
        int mask = set.length - 1;
        int slot = (int) (value ^ (value >>> 32)) & mask;
        while (set[slot] != 0) {
            if (set[slot] == value) {
                return false;
            }
            slot = (slot + 1) & mask;
        }
        set[slot] = value;
        return true;
    }

    /**
     * A 64-bit hash of an item (0 for none): a polynomial over the characters, mixed by MurmurHash3's finalizer. Two
     * of the few hundred items an entity has in a day share a hash with a probability near 2^-50.
     */
    static long itemHash(String item) {
        if (item == null) {
            return 0L;
        }
        long h = 1125899906842597L;
        for (int i = 0; i < item.length(); i++) {
            h = 31 * h + item.charAt(i);
        }
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        h *= 0xc4ceb9fe1a85ec53L;
        h ^= h >>> 33;
        return h == 0 ? 1L : h;
    }

    private void parse(String spec) {
        if (spec.equals(parsedSpec)) {
            return;
        }
        List<Aggregate> parsed = new ArrayList<>();
        List<String> kinds = new ArrayList<>();
        long longest = 0;
        for (String entry : spec.split(",")) {
            String[] parts = entry.trim().split(":");
            if (parts.length != 3 || !List.of("count", "sum", "distinct", "first").contains(parts[0])) {
                throw new IllegalArgumentException(
                        "sliding_features spec entry '" + entry + "' is not aggregate:kind:window_ms with aggregate "
                                + "count, sum, distinct or first");
            }
            long window = Long.parseLong(parts[2]);
            if (!"first".equals(parts[0]) && window <= 0) {
                throw new IllegalArgumentException("sliding_features spec entry '" + entry + "' needs a window > 0");
            }
            int kind = ANY;
            if (!"*".equals(parts[1])) {
                if (!kinds.contains(parts[1])) {
                    kinds.add(parts[1]);
                }
                kind = kinds.indexOf(parts[1]);
            }
            parsed.add(new Aggregate(parts[0], kind, window));
            if (!"first".equals(parts[0])) {
                longest = Math.max(longest, window);
            }
        }
        aggregates = parsed;
        kindNames = kinds;
        longestWindow = longest;
        parsedSpec = spec;
    }
}
