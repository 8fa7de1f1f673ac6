package com.suuupra.flink.features;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

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

    /** The key's events inside the longest window, as parallel arrays (a POJO Flink serializes without Kryo). */
    public static class Activity {
        public long asOf = Long.MIN_VALUE;
        public long version;
        public long[] first = new long[0];
        public long[] times = new long[0];
        public String[] kinds = new String[0];
        public long[] amounts = new long[0];
        public String[] items = new String[0];
    }

    private transient String parsedSpec;
    private transient List<Aggregate> aggregates;
    private transient long longestWindow;

    private record Aggregate(String function, String kind, long windowMs) {
        boolean matches(String eventKind) {
            return "*".equals(kind) || kind.equals(eventKind);
        }
    }

    public void eval(
            @StateHint Activity state,
            @ArgumentHint(name = "input", value = ArgumentTrait.SET_SEMANTIC_TABLE) Row input,
            @ArgumentHint(name = "spec") String spec) {
        parse(spec);
        long time = input.<Long>getFieldAs("event_time");
        String kind = input.getFieldAs("kind");
        Long amount = input.getFieldAs("amount");
        String item = input.getFieldAs("item");

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
        long[] times = new long[newSize];
        String[] kinds = new String[newSize];
        long[] amounts = new long[newSize];
        String[] items = new String[newSize];
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
        Set<String> distinct = "distinct".equals(aggregate.function()) ? new HashSet<>() : null;
        for (int i = 0; i < state.times.length; i++) {
            if (state.times[i] > from && aggregate.matches(state.kinds[i])) {
                count++;
                sum += state.amounts[i];
                if (distinct != null && state.items[i] != null) {
                    distinct.add(state.items[i]);
                }
            }
        }
        switch (aggregate.function()) {
            case "count":
                return count;
            case "sum":
                return sum;
            default:
                return (long) distinct.size();
        }
    }

    private void parse(String spec) {
        if (spec.equals(parsedSpec)) {
            return;
        }
        List<Aggregate> parsed = new ArrayList<>();
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
            parsed.add(new Aggregate(parts[0], parts[1], window));
            if (!"first".equals(parts[0])) {
                longest = Math.max(longest, window);
            }
        }
        aggregates = parsed;
        longestWindow = longest;
        parsedSpec = spec;
    }
}
