package com.suuupra.flink.clickhouse;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.table.catalog.UniqueConstraint;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.types.logical.LogicalType;

/**
 * {@code 'connector' = 'clickhouse'}: a SQL table that inserts into a ClickHouse table over HTTP.
 *
 * <pre>
 * CREATE TABLE sink (k STRING, n BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH (
 *   'connector' = 'clickhouse', 'url' = 'http://127.0.0.1:8123', 'database' = 'db', 'table-name' = 't',
 *   'sink.batch.rows' = '20000', 'sink.batch.interval' = '500 ms')
 * </pre>
 *
 * Columns are matched by name and written as the types ClickHouse reports for them; with a primary key the sink is
 * an upsert sink (the table should be a ReplacingMergeTree ordered by that key). {@code 'columns'} writes only the
 * listed columns, each from the table column it names: a query can then hand its input rows on as they are, which
 * the planner does only for a query that filters and does not project (a projection copies every string it keeps).
 */
public class ClickHouseTableSinkFactory implements DynamicTableSinkFactory {
    public static final ConfigOption<String> URL = ConfigOptions.key("url").stringType().noDefaultValue()
            .withDescription("ClickHouse's HTTP interface, e.g. http://127.0.0.1:8123");
    public static final ConfigOption<String> DATABASE = ConfigOptions.key("database").stringType()
            .defaultValue("default");
    public static final ConfigOption<String> TABLE = ConfigOptions.key("table-name").stringType().noDefaultValue();
    public static final ConfigOption<String> USERNAME = ConfigOptions.key("username").stringType().noDefaultValue();
    public static final ConfigOption<String> PASSWORD = ConfigOptions.key("password").stringType().noDefaultValue();
    public static final ConfigOption<Integer> BATCH_ROWS = ConfigOptions.key("sink.batch.rows").intType()
            .defaultValue(20_000).withDescription("An insert is sent at this many buffered rows ...");
    public static final ConfigOption<Integer> BATCH_MAX_ROWS = ConfigOptions.key("sink.batch.max-rows").intType()
            .noDefaultValue().withDescription("What a batch's size limit grows to after a few batches in a row left"
                    + " full (a backlog's drain: fewer parts for ClickHouse to merge), its 'sink.batch.interval' in the"
                    + " same proportion (at most 4 times); back to both once a batch's rows came slower than"
                    + " 'sink.batch.rows' per 'sink.batch.interval'. Default: 'sink.batch.rows' (no growth).");
    public static final ConfigOption<Duration> BATCH_INTERVAL = ConfigOptions.key("sink.batch.interval")
            .durationType().defaultValue(Duration.ofMillis(500))
            .withDescription("... or this long after the first row of a batch arrived.");
    public static final ConfigOption<Integer> MAX_IN_FLIGHT = ConfigOptions.key("sink.max-in-flight").intType()
            .defaultValue(2).withDescription("Inserts sent but not acknowledged before the task waits.");
    public static final ConfigOption<Integer> MAX_RETRIES = ConfigOptions.key("sink.max-retries").intType()
            .defaultValue(5).withDescription("Further attempts of an insert that failed transiently.");
    public static final ConfigOption<Duration> RETRY_BACKOFF = ConfigOptions.key("sink.retry.backoff")
            .durationType().defaultValue(Duration.ofMillis(500))
            .withDescription("First pause before a retry; doubled each time, with jitter, at most 30 s.");
    public static final ConfigOption<Duration> REQUEST_TIMEOUT = ConfigOptions.key("sink.request.timeout")
            .durationType().defaultValue(Duration.ofSeconds(60));
    public static final ConfigOption<String> COLUMNS = ConfigOptions.key("columns").stringType().noDefaultValue()
            .withDescription("The ClickHouse columns written, comma-separated, each 'name' (the table column of that"
                    + " name) or 'name=table_column'; the table's other columns are not written. Default: every"
                    + " table column, into the ClickHouse column of its name.");
    public static final ConfigOption<Integer> PARALLELISM = FactoryUtil.SINK_PARALLELISM;
    public static final ConfigOption<Boolean> OWN_TASK = ConfigOptions.key("sink.own-task").booleanType()
            .defaultValue(false)
            .withDescription("The writer runs in a task of its own, not chained to the operators before it: the"
                    + " insert a checkpoint waits for then stalls only the writer (a latency-bound job's choice).");

    @Override
    public String factoryIdentifier() {
        return "clickhouse";
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(URL, TABLE);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(DATABASE, USERNAME, PASSWORD, BATCH_ROWS, BATCH_MAX_ROWS, BATCH_INTERVAL, MAX_IN_FLIGHT,
                MAX_RETRIES, RETRY_BACKOFF, REQUEST_TIMEOUT, PARALLELISM, OWN_TASK, COLUMNS);
    }

    @Override
    public DynamicTableSink createDynamicTableSink(Context context) {
        FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
        helper.validate();
        ReadableConfig options = helper.getOptions();
        ResolvedSchema schema = context.getCatalogTable().getResolvedSchema();
        List<String> tableColumns = schema.getColumnNames();
        List<LogicalType> tableTypes =
                schema.getColumnDataTypes().stream().map(type -> type.getLogicalType()).toList();
        List<String> names = new ArrayList<>();
        List<Integer> positions = new ArrayList<>();
        Optional<String> listed = options.getOptional(COLUMNS);
        if (listed.isEmpty()) {
            for (int position = 0; position < tableColumns.size(); position++) {
                names.add(tableColumns.get(position));
                positions.add(position);
            }
        } else {
            for (String entry : listed.get().split(",")) {
                String[] parts = entry.split("=", 2);
                String name = parts[0].trim();
                String from = parts.length == 2 ? parts[1].trim() : name;
                int position = tableColumns.indexOf(from);
                if (name.isEmpty()) {
                    throw badColumnsEntry(entry, "no ClickHouse column named");
                }
                if (position < 0) {
                    throw badColumnsEntry(entry, "no table column '" + from + "' (the table has " + tableColumns + ")");
                }
                if (names.contains(name)) {
                    throw badColumnsEntry(entry, "column '" + name + "' is listed twice");
                }
                names.add(name);
                positions.add(position);
            }
        }
        List<LogicalType> types = positions.stream().map(tableTypes::get).toList();
        List<String> keyColumns = schema.getPrimaryKey().map(UniqueConstraint::getColumns).orElse(List.of());
        int[] key = new int[keyColumns.size()];
        for (int i = 0; i < key.length; i++) {
            key[i] = positions.indexOf(tableColumns.indexOf(keyColumns.get(i)));
            if (key[i] < 0) {
                throw new IllegalArgumentException("primary key column '" + keyColumns.get(i) + "' is not among '"
                        + COLUMNS.key() + "': an upsert sink writes its key");
            }
        }
        positive(options, BATCH_ROWS);
        positive(options, MAX_IN_FLIGHT);
        int maxBatchRows = options.getOptional(BATCH_MAX_ROWS).orElse(options.get(BATCH_ROWS));
        if (maxBatchRows < options.get(BATCH_ROWS)) {
            throw new IllegalArgumentException("'" + BATCH_MAX_ROWS.key() + "' (" + maxBatchRows
                    + ") must be at least '" + BATCH_ROWS.key() + "' (" + options.get(BATCH_ROWS) + ")");
        }
        if (options.get(BATCH_INTERVAL).toMillis() < 1) {
            throw new IllegalArgumentException("'" + BATCH_INTERVAL.key() + "' must be at least 1 ms, got "
                    + options.get(BATCH_INTERVAL).toNanos() / 1e6 + " ms");
        }
        if (options.get(MAX_RETRIES) < 0) {
            throw new IllegalArgumentException("'" + MAX_RETRIES.key() + "' must be 0 or more");
        }
        ClickHouseSinkConfig config = new ClickHouseSinkConfig(
                options.get(URL), options.get(DATABASE), options.get(TABLE), options.getOptional(USERNAME).orElse(null),
                options.getOptional(PASSWORD).orElse(null), names, positions.stream().mapToInt(Integer::intValue).toArray(),
                types, key, options.get(BATCH_ROWS), maxBatchRows,
                options.get(BATCH_INTERVAL).toMillis(), options.get(MAX_IN_FLIGHT), options.get(MAX_RETRIES),
                options.get(RETRY_BACKOFF).toMillis(), options.get(REQUEST_TIMEOUT).toMillis());
        return new ClickHouseTableSink(config, options.getOptional(PARALLELISM).orElse(null), options.get(OWN_TASK));
    }

    private static IllegalArgumentException badColumnsEntry(String entry, String problem) {
        return new IllegalArgumentException("'" + COLUMNS.key() + "' entry '" + entry.trim() + "': " + problem
                + "; write 'name' or 'name=table_column', comma-separated");
    }

    private static void positive(ReadableConfig options, ConfigOption<Integer> option) {
        if (options.get(option) < 1) {
            throw new IllegalArgumentException("'" + option.key() + "' must be at least 1");
        }
    }
}
