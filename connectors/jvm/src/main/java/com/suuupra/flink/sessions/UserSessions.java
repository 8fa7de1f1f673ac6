package com.suuupra.flink.sessions;

import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;

/**
 * Gap sessions of a view's events as another view, computed by {@link SessionsOperator} on Flink's binary rows (no
 * conversion to Java objects on the way in, none on the way out).
 *
 * <p>The input view has {@code user_id STRING, event_time BIGINT, high_ms BIGINT, content_id STRING} (NULL when the
 * event watched nothing). The output view has {@code user_id, session_start, session_end, duration_seconds, events,
 * contents_watched, version, deleted}.
 *
 * <p>From PyFlink: {@code gateway.jvm.com.suuupra.flink.sessions.UserSessions.register(t_env._j_tenv, config_json)}
 * (connectors/flink/tables.py does it).
 */
public final class UserSessions {
    private UserSessions() {}

    static final DataType INPUT = DataTypes.ROW(
            DataTypes.FIELD("user_id", DataTypes.STRING()),
            DataTypes.FIELD("event_time", DataTypes.BIGINT()),
            DataTypes.FIELD("high_ms", DataTypes.BIGINT()),
            DataTypes.FIELD("content_id", DataTypes.STRING()));

    static final RowType OUTPUT = (RowType) DataTypes.ROW(
            DataTypes.FIELD("user_id", DataTypes.STRING().notNull()),
            DataTypes.FIELD("session_start", DataTypes.BIGINT().notNull()),
            DataTypes.FIELD("session_end", DataTypes.BIGINT().notNull()),
            DataTypes.FIELD("duration_seconds", DataTypes.INT().notNull()),
            DataTypes.FIELD("events", DataTypes.INT().notNull()),
            DataTypes.FIELD("contents_watched", DataTypes.INT().notNull()),
            DataTypes.FIELD("version", DataTypes.BIGINT().notNull()),
            DataTypes.FIELD("deleted", DataTypes.INT().notNull())).notNull().getLogicalType();

    /** Registers the output view; the input rows with a NULL user_id have no session and are skipped by the query. */
    public static void register(StreamTableEnvironment tableEnv, String inputView, String outputView, long gapMs,
            long boundMs, long flushMs, int bundleRows, long stateTtlMs, String uid) {
        Table input = tableEnv.sqlQuery("SELECT user_id, event_time, high_ms, content_id FROM `" + inputView
                + "` WHERE user_id IS NOT NULL AND event_time IS NOT NULL");
        DataStream<RowData> events = tableEnv.toDataStream(input, INPUT.bridgedTo(RowData.class));
        DataStream<RowData> sessions = events
                .keyBy(new UserKey())
                .transform(outputView + ": gap sessions", InternalTypeInfo.of(OUTPUT),
                        new SessionsOperator(gapMs, boundMs, flushMs, bundleRows, stateTtlMs))
                .uid(uid);
        tableEnv.createTemporaryView(outputView, tableEnv.fromDataStream(sessions));
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
