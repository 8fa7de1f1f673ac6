package com.suuupra.flink.sessions;

import java.util.List;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.binary.BinaryRowData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.data.writer.BinaryRowWriter;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeFamily;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.Collector;

/**
 * Gap sessions of a view's events as another view, computed by {@link SessionsOperator} on Flink's binary rows (no
 * conversion to Java objects on the way in, none on the way out).
 *
 * <p>The input view has at least {@code user_id STRING, event_time BIGINT, high_ms BIGINT, event_type STRING,
 * content_id STRING}; an event of the watched type watches its {@code content_id}. Its rows are taken as they are
 * (the view should only filter), and what the operator reads (the user, the event time, the partition's newest time
 * and the watched content) is written into one small binary row here: a SQL projection first copied every string it
 * kept, then the conversion to the stream wrote them into a binary row again. The output
 * view has {@code user_id, session_start, session_end, duration_seconds, events, contents_watched, version, deleted}.
 *
 * <p>From PyFlink: {@code gateway.jvm.com.suuupra.flink.sessions.UserSessions.register(t_env._j_tenv, ...)}
 * (connectors/flink/tables.py does it).
 */
public final class UserSessions {
    private UserSessions() {}

    /** What {@link SessionsOperator} reads: {@code content_id} is NULL when the event watched nothing. */
    static final RowType INPUT = (RowType) DataTypes.ROW(
            DataTypes.FIELD("user_id", DataTypes.STRING().notNull()),
            DataTypes.FIELD("event_time", DataTypes.BIGINT().notNull()),
            DataTypes.FIELD("high_ms", DataTypes.BIGINT()),
            DataTypes.FIELD("content_id", DataTypes.STRING())).notNull().getLogicalType();

    static final RowType OUTPUT = (RowType) DataTypes.ROW(
            DataTypes.FIELD("user_id", DataTypes.STRING().notNull()),
            DataTypes.FIELD("session_start", DataTypes.BIGINT().notNull()),
            DataTypes.FIELD("session_end", DataTypes.BIGINT().notNull()),
            DataTypes.FIELD("duration_seconds", DataTypes.INT().notNull()),
            DataTypes.FIELD("events", DataTypes.INT().notNull()),
            DataTypes.FIELD("contents_watched", DataTypes.INT().notNull()),
            DataTypes.FIELD("version", DataTypes.BIGINT().notNull()),
            DataTypes.FIELD("deleted", DataTypes.INT().notNull())).notNull().getLogicalType();

    /**
     * Registers the output view. The input rows with a NULL user_id or event_time have no session and are skipped.
     *
     * @param watchedEventType the event type whose {@code content_id} counts as a content watched
     */
    public static void register(StreamTableEnvironment tableEnv, String inputView, String outputView,
            String watchedEventType, long gapMs, long boundMs, long flushMs, int bundleRows, long stateTtlMs,
            String uid) {
        Table input = tableEnv.from("`" + inputView + "`");
        ResolvedSchema schema = input.getResolvedSchema();
        SessionEvents project = new SessionEvents(
                position(schema, inputView, "user_id", true),
                position(schema, inputView, "event_time", false),
                position(schema, inputView, "high_ms", false),
                position(schema, inputView, "event_type", true),
                position(schema, inputView, "content_id", true),
                watchedEventType);
        DataStream<RowData> events = tableEnv
                .<RowData>toDataStream(input, schema.toPhysicalRowDataType().bridgedTo(RowData.class))
                .flatMap(project, InternalTypeInfo.of(INPUT))
                .name(outputView + ": session events");
        DataStream<RowData> sessions = events
                .keyBy(new UserKey())
                .transform(outputView + ": gap sessions", InternalTypeInfo.of(OUTPUT),
                        new SessionsOperator(gapMs, boundMs, flushMs, bundleRows, stateTtlMs))
                .uid(uid);
        tableEnv.createTemporaryView(outputView, tableEnv.fromDataStream(sessions));
    }

    /** The column's position; a text column may be any character string (STRING, CHAR), the others BIGINT. */
    private static int position(ResolvedSchema schema, String view, String column, boolean text) {
        List<String> names = schema.getColumnNames();
        int position = names.indexOf(column);
        if (position < 0) {
            throw new ValidationException("the sessions' input view '" + view + "' has no column '" + column
                    + "' (it has " + names + ")");
        }
        LogicalType actual = schema.getColumnDataTypes().get(position).getLogicalType();
        if (text ? !actual.is(LogicalTypeFamily.CHARACTER_STRING) : !actual.is(LogicalTypeRoot.BIGINT)) {
            throw new ValidationException("the sessions' input view '" + view + "' has " + column + " "
                    + actual.asSummaryString() + "; it must be " + (text ? "STRING" : "BIGINT"));
        }
        return position;
    }

    /**
     * An input row as {@link #INPUT}, written into one reused binary row: the keyed exchange after it serializes the
     * row before the next one comes.
     */
    static final class SessionEvents implements FlatMapFunction<RowData, RowData> {
        private static final long serialVersionUID = 1L;

        private final int user;
        private final int time;
        private final int high;
        private final int type;
        private final int content;
        private final String watchedEventType;
        private transient BinaryStringData watched;
        private transient BinaryRowData out;
        private transient BinaryRowWriter writer;

        SessionEvents(int user, int time, int high, int type, int content, String watchedEventType) {
            this.user = user;
            this.time = time;
            this.high = high;
            this.type = type;
            this.content = content;
            this.watchedEventType = watchedEventType;
        }

        @Override
        public void flatMap(RowData row, Collector<RowData> collector) {
            if (row.isNullAt(user) || row.isNullAt(time)) {
                return;
            }
            if (out == null) {
                watched = BinaryStringData.fromString(watchedEventType);
                out = new BinaryRowData(INPUT.getFieldCount());
                writer = new BinaryRowWriter(out);
            }
            writer.reset();
            writer.writeString(0, row.getString(user));
            writer.writeLong(1, row.getLong(time));
            if (row.isNullAt(high)) {
                writer.setNullAt(2);
            } else {
                writer.writeLong(2, row.getLong(high));
            }
            if (!row.isNullAt(content) && !row.isNullAt(type) && watched.equals(row.getString(type))) {
                writer.writeString(3, row.getString(content));
            } else {
                writer.setNullAt(3);
            }
            writer.complete();
            collector.collect(out);
        }
    }

    /** The user id as the key (a Java string: keyed state needs a serializable key of a stable hash). */
    private static final class UserKey implements KeySelector<RowData, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(RowData row) {
            return row.getString(0).toString();
        }
    }
}
