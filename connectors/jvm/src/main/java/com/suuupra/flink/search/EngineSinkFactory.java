package com.suuupra.flink.search;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/**
 * {@code 'connector' = 'redis-engine'}: a SQL table whose rows are written to a Redis-protocol server in batches, by
 * a Lua script (RediSearch documents behind a guard) or by a Cypher query (a FalkorDB graph). Knows nothing of what
 * the rows mean: the script or query does.
 *
 * <pre>CREATE TABLE docs (id STRING, revision INT, body BYTES) WITH ('connector' = 'redis-engine',
 *     'host' = '127.0.0.1', 'port' = '6380', 'mode' = 'script', 'script' = 'local ... return 1',
 *     'script.key-prefixes' = 'doc:;state:')</pre>
 * Script mode: one EVALSHA per row; KEYS are each prefix followed by the row's first column, ARGV every column in
 * order (strings as UTF-8, BYTES as they are, numbers and booleans as text, NULL as an empty string).
 *
 * <pre>CREATE TABLE edges (lo STRING, hi STRING, day BIGINT, users BIGINT, PRIMARY KEY (lo, hi, day) NOT ENFORCED)
 *     WITH ('connector' = 'redis-engine', 'mode' = 'graph', 'graph' = 'g',
 *     'query' = 'UNWIND $rows AS r MERGE (a:N {id: r.lo}) ...')</pre>
 * Graph mode: one GRAPH.QUERY per batch with the rows as {@code $rows}, a list of maps of column name to value and
 * {@code deleted} (true for a retraction).
 *
 * <p>With a primary key the table takes an upsert stream and a batch keeps the last row per key.
 */
public class EngineSinkFactory implements DynamicTableSinkFactory {
    static final ConfigOption<String> HOST = ConfigOptions.key("host").stringType().defaultValue("127.0.0.1");
    static final ConfigOption<Integer> PORT = ConfigOptions.key("port").intType().defaultValue(6379);
    static final ConfigOption<String> PASSWORD = ConfigOptions.key("password").stringType().noDefaultValue();
    static final ConfigOption<String> MODE = ConfigOptions.key("mode").stringType().noDefaultValue()
            .withDescription("script (EVALSHA per row) or graph (GRAPH.QUERY per batch)");
    static final ConfigOption<String> SCRIPT = ConfigOptions.key("script").stringType().noDefaultValue();
    static final ConfigOption<String> KEY_PREFIXES =
            ConfigOptions.key("script.key-prefixes").stringType().defaultValue("");
    static final ConfigOption<String> GRAPH = ConfigOptions.key("graph").stringType().noDefaultValue();
    static final ConfigOption<String> QUERY = ConfigOptions.key("query").stringType().noDefaultValue();
    static final ConfigOption<Integer> FLUSH_ROWS =
            ConfigOptions.key("sink.buffer-flush.max-rows").intType().defaultValue(500);
    static final ConfigOption<Duration> FLUSH_INTERVAL =
            ConfigOptions.key("sink.buffer-flush.interval").durationType().defaultValue(Duration.ofMillis(200));
    static final ConfigOption<Integer> MAX_RETRIES = ConfigOptions.key("sink.max-retries").intType().defaultValue(10);
    static final ConfigOption<Duration> TIMEOUT =
            ConfigOptions.key("timeout").durationType().defaultValue(Duration.ofSeconds(30));

    private static final Pattern NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");

    @Override
    public String factoryIdentifier() {
        return "redis-engine";
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(MODE);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(HOST, PORT, PASSWORD, SCRIPT, KEY_PREFIXES, GRAPH, QUERY, FLUSH_ROWS, FLUSH_INTERVAL,
                MAX_RETRIES, TIMEOUT, FactoryUtil.SINK_PARALLELISM);
    }

    @Override
    public DynamicTableSink createDynamicTableSink(Context context) {
        FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
        helper.validate();
        ReadableConfig options = helper.getOptions();
        ResolvedSchema schema = context.getCatalogTable().getResolvedSchema();

        List<EngineSink.Field> fields = new ArrayList<>();
        for (Column column : schema.getColumns()) {
            if (!column.isPhysical()) {
                continue;
            }
            LogicalTypeRoot type = column.getDataType().getLogicalType().getTypeRoot();
            require(EngineSink.SUPPORTED.contains(type), "column " + column.getName() + " has type " + type
                    + "; supported: " + EngineSink.SUPPORTED);
            fields.add(new EngineSink.Field(column.getName(), type));
        }
        List<Integer> keyPositions = new ArrayList<>();
        schema.getPrimaryKey().ifPresent(key -> {
            for (String name : key.getColumns()) {
                for (int i = 0; i < fields.size(); i++) {
                    if (fields.get(i).name().equals(name)) {
                        keyPositions.add(i);
                    }
                }
            }
        });

        String mode = options.get(MODE);
        String command;
        List<String> keyPrefixes = new ArrayList<>();
        String graph = null;
        if (mode.equals("script")) {
            command = options.getOptional(SCRIPT).orElseThrow(() -> invalid("mode 'script' needs 'script'"));
            for (String prefix : options.get(KEY_PREFIXES).split(";", -1)) {
                if (!prefix.isEmpty()) {
                    keyPrefixes.add(prefix);
                }
            }
            require(keyPrefixes.isEmpty() || fields.get(0).type() == LogicalTypeRoot.VARCHAR,
                    "keys are built from the first column, which must be a STRING");
        } else if (mode.equals("graph")) {
            command = options.getOptional(QUERY).orElseThrow(() -> invalid("mode 'graph' needs 'query'"));
            graph = options.getOptional(GRAPH).orElseThrow(() -> invalid("mode 'graph' needs 'graph'"));
            for (EngineSink.Field field : fields) {
                require(NAME.matcher(field.name()).matches() && !field.name().equals("deleted"),
                        "column " + field.name() + " cannot be a Cypher map key (or is the reserved 'deleted')");
                require(field.type() != LogicalTypeRoot.VARBINARY && field.type() != LogicalTypeRoot.BINARY,
                        "graph mode takes no BYTES column (" + field.name() + ")");
            }
        } else {
            throw invalid("mode must be 'script' or 'graph', not '" + mode + "'");
        }

        EngineSink sink = new EngineSink(options.get(HOST), options.get(PORT),
                options.getOptional(PASSWORD).orElse(null), mode.equals("graph"), command, keyPrefixes, graph, fields,
                keyPositions, options.get(FLUSH_ROWS), options.get(FLUSH_INTERVAL).toMillis(),
                options.get(MAX_RETRIES), (int) options.get(TIMEOUT).toMillis());
        return new EngineTableSink(sink, !keyPositions.isEmpty(),
                options.getOptional(FactoryUtil.SINK_PARALLELISM).orElse(null));
    }

    private static IllegalArgumentException invalid(String message) {
        return new IllegalArgumentException("redis-engine sink: " + message);
    }

    private static void require(boolean condition, String message) {
        if (!condition) {
            throw invalid(message);
        }
    }
}
