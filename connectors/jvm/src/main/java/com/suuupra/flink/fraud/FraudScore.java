package com.suuupra.flink.fraud;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.suuupra.flink.redis.FeatureHistory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * Decides one {@code payment.initiated}: reads the user's and device's features as of just before the payment (what
 * training reads: {@link FeatureHistory}, older moments from {@link OfflineFeatures}), scores them with the trained
 * model ({@link FraudModel}) and builds the {@code payment.fraud_decided} record.
 *
 * <p>Everything it needs comes in one JSON document built by {@code jobs/fraud.py} from the settings and the saved
 * model (it travels in the job graph): a job scores with the model version it was submitted with.
 */
public final class FraudScore extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    private final String configuration;
    private transient FraudModel model;
    private transient List<View> views;
    private transient FeatureHistory history;
    private transient OfflineFeatures offline;
    private transient UUID namespace;
    private transient int schemaId;
    private transient String producer;
    private transient long catchUpNanos;
    private transient String asOfFeature;

    private record View(String name, String joinKey, List<String> features) {}

    public FraudScore(String configuration) {
        this.configuration = configuration;
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        JsonNode root = new ObjectMapper().readTree(configuration);
        model = new FraudModel(root.get("model"));
        views = new ArrayList<>();
        for (JsonNode view : root.get("views")) {
            List<String> features = new ArrayList<>();
            view.get("features").forEach(f -> features.add(f.asText()));
            views.add(new View(view.get("name").asText(), view.get("join_key").asText(), features));
        }
        JsonNode redis = root.get("redis");
        history = new FeatureHistory(redis.get("host").asText(), redis.get("port").asInt(),
                redis.get("password").asText(""), redis.get("db").asInt(), root.get("project").asText(),
                redis.get("timeout_ms").asInt());
        JsonNode postgres = root.get("postgres");
        offline = new OfflineFeatures(postgres.get("url").asText(), postgres.get("user").asText(),
                postgres.get("password").asText(""), postgres.get("schema").asText(),
                postgres.get("timeout_s").asInt());
        catchUpNanos = TimeUnit.MILLISECONDS.toNanos(root.get("offline_catch_up_ms").asLong());
        asOfFeature = root.get("as_of_feature").asText();
        JsonNode decision = root.get("decision");
        namespace = UUID.fromString(decision.get("namespace").asText());
        schemaId = decision.get("schema_id").asInt();
        producer = decision.get("producer").asText();
    }

    @DataTypeHint("ROW<decision_id STRING, decision STRING, score DOUBLE, reasons STRING, model_version STRING, "
            + "decided_at BIGINT, record BYTES>")
    public Row eval(String eventId, Long eventTime, String userId, String correlationId, String paymentId,
            String orderId, Integer attempt, String method, Long amountMinor, String deviceId) {
        long moment = eventTime - 1; // what training reads: the features as of just before the payment
        // The decoder refuses a payment without a user; a missing device only means no device features.
        Map<String, String> entities = Map.of("user_id", userId == null ? "" : userId, "device_id",
                deviceId == null ? "" : deviceId);
        Map<String, Long> features;
        try {
            features = features(entities, moment);
        } catch (IOException error) {
            throw new UncheckedIOException("reading the features of payment " + paymentId, error);
        } catch (SQLException error) {
            throw new IllegalStateException("reading the offline features of payment " + paymentId, error);
        } catch (InterruptedException error) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while reading the features of payment " + paymentId, error);
        }
        FraudModel.Scored scored = model.score(features, eventTime, amountMinor, attempt, method);
        long decidedAt = System.currentTimeMillis();
        String decisionId = DecisionRecord.uuid5(namespace, eventId);
        byte[] record = DecisionRecord.encode(schemaId, decisionId, decidedAt, producer, correlationId, userId,
                paymentId, orderId, scored.decision(), scored.score(), model.version, scored.reasons());
        return Row.of(decisionId, scored.decision(), scored.score(), String.join("; ", scored.reasons()),
                model.version, decidedAt, record);
    }

    /** Every view's features ({@code view__feature}) of the payment's entities as of the moment; absent: none. */
    private Map<String, Long> features(Map<String, String> entities, long moment)
            throws IOException, SQLException, InterruptedException {
        List<View> asked = new ArrayList<>();
        List<FeatureHistory.Request> requests = new ArrayList<>();
        for (View view : views) {
            String entity = entities.get(view.joinKey());
            if (entity != null && !entity.isEmpty()) {
                asked.add(view);
                requests.add(new FeatureHistory.Request(view.name(), view.joinKey(), entity, moment));
            }
        }
        List<FeatureHistory.Reply> replies = history.read(requests);
        Map<String, Long> features = new HashMap<>();
        long deadline = System.nanoTime() + catchUpNanos;
        for (int i = 0; i < asked.size(); i++) {
            View view = asked.get(i);
            FeatureHistory.Reply reply = replies.get(i);
            Long[] values = reply.values();
            if (!reply.found() && reply.oldestKeptVersion() > 1) {
                // The moment is before every row still kept, and older rows existed: the offline table has them.
                values = offline.read(view.name(), view.joinKey(), view.features(), asOfFeature,
                        entities.get(view.joinKey()), moment, reply.oldestKeptVersion(), deadline);
            }
            if (values != null) {
                if (values.length != view.features().size()) {
                    throw new IllegalStateException(view.name() + ": a kept row has " + values.length
                            + " values, the view " + view.features().size() + " features (changed spec? run a fresh"
                            + " features job)");
                }
                for (int f = 0; f < values.length; f++) {
                    if (values[f] != null) {
                        features.put(view.name() + "__" + view.features().get(f), values[f]);
                    }
                }
            }
        }
        return features;
    }

    @Override
    public void close() throws Exception {
        try {
            if (history != null) {
                history.close();
            }
        } finally {
            if (offline != null) {
                offline.close();
            }
        }
    }

    @Override
    public boolean isDeterministic() {
        return false; // reads the feature store and the clock
    }
}
