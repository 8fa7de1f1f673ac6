package com.suuupra.flink.features;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.MapView;
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
 * counts for {@code first} and {@code version}).
 *
 * <p>Each aggregate's value is kept running (counts, sums, and for {@code distinct} how often each item occurs in
 * the window), so an event costs the same however many events its key has: it is added to the windows it falls
 * into, and when it moves {@code as_of} forward, the events that leave a window are taken out of it. They are found in
 * the key's events by second ({@code MapView} state: only the seconds an event touches are read), and an event
 * leaves the state once it is older than the longest window.
 */
@DataTypeHint("ROW<as_of BIGINT, version BIGINT, vals ARRAY<BIGINT>>")
public class SlidingFeatures extends ProcessTableFunction<Row> {
    private static final long serialVersionUID = 1L;
    static final long BUCKET_MS = 1000;

    /** What each aggregate holds now, for the windows ending at {@code asOf}. */
    public static class Summary {
        public long asOf = Long.MIN_VALUE;
        public long version;
        /** Per aggregate: the earliest time (first), or events in the window (count), or distinct items (distinct). */
        public long[] values = new long[0];
        public long[] sums = new long[0];
        /** How many seconds hold events (entries of the events map). */
        public long buckets;
    }

    /** The key's events of one second, as parallel arrays (a POJO Flink serializes without Kryo). */
    public static class Bucket {
        public long[] times = new long[0];
        public String[] kinds = new String[0];
        public long[] amounts = new long[0];
        public String[] items = new String[0];
    }

    private transient String parsedSpec;
    private transient List<Aggregate> aggregates;
    private transient long[] windows;
    private transient long longestWindow;

    private record Aggregate(String function, String kind, long windowMs) {
        boolean matches(String eventKind) {
            return "*".equals(kind) || kind.equals(eventKind);
        }

        boolean windowed() {
            return !"first".equals(function);
        }
    }

    public void eval(
            @StateHint Summary summary,
            @StateHint MapView<Long, Bucket> events,
            @StateHint MapView<String, Long> occurrences,
            @ArgumentHint(name = "input", value = ArgumentTrait.SET_SEMANTIC_TABLE) Row input,
            @ArgumentHint(name = "spec") String spec) throws Exception {
        parse(spec);
        long time = input.<Long>getFieldAs("event_time");
        String kind = input.getFieldAs("kind");
        Long given = input.getFieldAs("amount");
        long amount = given == null ? 0L : given;
        String item = input.getFieldAs("item");

        if (summary.values.length != aggregates.size()) {
            summary.values = new long[aggregates.size()];
            summary.sums = new long[aggregates.size()];
            for (int a = 0; a < aggregates.size(); a++) {
                summary.values[a] = aggregates.get(a).windowed() ? 0L : Long.MAX_VALUE;
            }
        }
        summary.version++;
        for (int a = 0; a < aggregates.size(); a++) {
            if (!aggregates.get(a).windowed() && aggregates.get(a).matches(kind)) {
                summary.values[a] = Math.min(summary.values[a], time);
            }
        }
        if (summary.asOf == Long.MIN_VALUE) {
            summary.asOf = time;
        } else if (time > summary.asOf) {
            advance(summary, events, occurrences, time);
        }
        if (longestWindow > 0 && time > summary.asOf - longestWindow) {
            store(summary, events, time, kind, amount, item);
            for (int a = 0; a < aggregates.size(); a++) {
                Aggregate aggregate = aggregates.get(a);
                if (aggregate.windowed() && aggregate.matches(kind) && time > summary.asOf - aggregate.windowMs()) {
                    include(summary, occurrences, a, 1, amount, item);
                }
            }
        }

        Long[] values = new Long[aggregates.size()];
        for (int a = 0; a < aggregates.size(); a++) {
            Aggregate aggregate = aggregates.get(a);
            long value = "sum".equals(aggregate.function()) ? summary.sums[a] : summary.values[a];
            values[a] = !aggregate.windowed() && value == Long.MAX_VALUE ? null : value;
        }
        collect(Row.of(summary.asOf, summary.version, values));
    }

    /**
     * Moves the windows' end to {@code newAsOf}: for each window length W the events with
     * {@code asOf - W < time <= newAsOf - W} leave it; those no window can hold any more leave the state.
     */
    private void advance(Summary summary, MapView<Long, Bucket> events, MapView<String, Long> occurrences, long newAsOf)
            throws Exception {
        long oldAsOf = summary.asOf;
        for (long window : windows) {
            long from = oldAsOf - window;
            long to = newAsOf - window;
            boolean prune = window == longestWindow;
            for (long second : secondsHolding(summary, events, from, to)) {
                Bucket bucket = events.get(second);
                if (bucket == null) {
                    continue;
                }
                int kept = 0;
                for (int i = 0; i < bucket.times.length; i++) {
                    long time = bucket.times[i];
                    if (time > from && time <= to) {
                        for (int a = 0; a < aggregates.size(); a++) {
                            Aggregate aggregate = aggregates.get(a);
                            if (aggregate.windowMs() == window && aggregate.windowed()
                                    && aggregate.matches(bucket.kinds[i])) {
                                include(summary, occurrences, a, -1, bucket.amounts[i], bucket.items[i]);
                            }
                        }
                    }
                    if (time > to) {
                        kept++;
                    }
                }
                if (prune && kept == 0) {
                    events.remove(second);
                    summary.buckets--;
                } else if (prune && kept < bucket.times.length) {
                    events.put(second, keepAfter(bucket, to, kept));
                }
            }
        }
        summary.asOf = newAsOf;
    }

    /**
     * The seconds that may hold events with {@code from < time <= to}: each second of the range, or, when the range
     * spans more seconds than the key has events in (a key quiet for hours), the seconds it has.
     */
    private static Iterable<Long> secondsHolding(Summary summary, MapView<Long, Bucket> events, long from, long to)
            throws Exception {
        long first = Math.floorDiv(from + 1, BUCKET_MS);
        long last = Math.floorDiv(to, BUCKET_MS);
        if (last < first) {
            return List.of();
        }
        if (last - first + 1 <= summary.buckets) {
            List<Long> seconds = new ArrayList<>((int) (last - first + 1));
            for (long second = first; second <= last; second++) {
                seconds.add(second);
            }
            return seconds;
        }
        // Sorted and copied: the walk may remove entries while it goes.
        TreeSet<Long> seconds = new TreeSet<>();
        for (Map.Entry<Long, Bucket> entry : events.entries()) {
            if (entry.getKey() >= first && entry.getKey() <= last) {
                seconds.add(entry.getKey());
            }
        }
        return seconds;
    }

    private static Bucket keepAfter(Bucket bucket, long to, int kept) {
        Bucket newer = new Bucket();
        newer.times = new long[kept];
        newer.kinds = new String[kept];
        newer.amounts = new long[kept];
        newer.items = new String[kept];
        int at = 0;
        for (int i = 0; i < bucket.times.length; i++) {
            if (bucket.times[i] > to) {
                newer.times[at] = bucket.times[i];
                newer.kinds[at] = bucket.kinds[i];
                newer.amounts[at] = bucket.amounts[i];
                newer.items[at++] = bucket.items[i];
            }
        }
        return newer;
    }

    private static void store(Summary summary, MapView<Long, Bucket> events, long time, String kind, long amount,
            String item) throws Exception {
        long second = Math.floorDiv(time, BUCKET_MS);
        Bucket bucket = events.get(second);
        if (bucket == null) {
            bucket = new Bucket();
            summary.buckets++;
        }
        int size = bucket.times.length;
        bucket.times = Arrays.copyOf(bucket.times, size + 1);
        bucket.kinds = Arrays.copyOf(bucket.kinds, size + 1);
        bucket.amounts = Arrays.copyOf(bucket.amounts, size + 1);
        bucket.items = Arrays.copyOf(bucket.items, size + 1);
        bucket.times[size] = time;
        bucket.kinds[size] = kind;
        bucket.amounts[size] = amount;
        bucket.items[size] = item;
        events.put(second, bucket);
    }

    /** Adds ({@code sign} 1) or takes out (-1) one event of aggregate {@code a}'s window. */
    private void include(Summary summary, MapView<String, Long> occurrences, int a, int sign, long amount, String item)
            throws Exception {
        switch (aggregates.get(a).function()) {
            case "count" -> summary.values[a] += sign;
            case "sum" -> summary.sums[a] += sign * amount;
            default -> {
                if (item == null) {
                    return;
                }
                String key = a + ":" + item;
                Long seen = occurrences.get(key);
                long now = (seen == null ? 0L : seen) + sign;
                if (now <= 0) {
                    occurrences.remove(key);
                    summary.values[a]--;
                } else {
                    occurrences.put(key, now);
                    if (seen == null) {
                        summary.values[a]++;
                    }
                }
            }
        }
    }

    private void parse(String spec) {
        if (spec.equals(parsedSpec)) {
            return;
        }
        List<Aggregate> parsed = new ArrayList<>();
        TreeSet<Long> lengths = new TreeSet<>();
        for (String entry : spec.split(",")) {
            String[] parts = entry.trim().split(":");
            if (parts.length != 3 || !List.of("count", "sum", "distinct", "first").contains(parts[0])) {
                throw new IllegalArgumentException(
                        "sliding_features spec entry '" + entry + "' is not aggregate:kind:window_ms with aggregate "
                                + "count, sum, distinct or first");
            }
            long window = Long.parseLong(parts[2]);
            Aggregate aggregate = new Aggregate(parts[0], parts[1], window);
            if (aggregate.windowed() && window <= 0) {
                throw new IllegalArgumentException("sliding_features spec entry '" + entry + "' needs a window > 0");
            }
            parsed.add(aggregate);
            if (aggregate.windowed()) {
                lengths.add(window);
            }
        }
        aggregates = parsed;
        windows = lengths.stream().mapToLong(Long::longValue).toArray();
        longestWindow = lengths.isEmpty() ? 0 : lengths.last();
        parsedSpec = spec;
    }
}
