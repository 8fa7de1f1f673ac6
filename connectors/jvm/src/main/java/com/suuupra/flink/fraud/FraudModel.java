package com.suuupra.flink.fraud;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.Serializable;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The fraud model as {@code suuupra fraud train} saved it (scikit-learn's StandardScaler then LogisticRegression),
 * exported by the job to its parameters: the inputs built from the features and the payment exactly as
 * {@code suuupra.fraud.model.model_inputs} builds them, the score, the decision and the reasons.
 *
 * <p>Every formula here has its twin in Python; {@code tests/jobs/test_fraud_scoring.py} compares the two on random
 * rows with missing and extreme features.
 */
final class FraudModel implements Serializable {
    private static final long serialVersionUID = 1L;

    final String version;
    private final String[] inputs;
    private final double[] mean;
    private final double[] scale;
    private final double[] weights;
    private final double intercept;
    private final double review;
    private final double reject;
    private final int reasonCount;
    /** Feast column ({@code view__feature}) -> the input holding its logarithm ({@code feature_log}). */
    private final Map<String, String> logCounts;

    FraudModel(JsonNode model) {
        version = model.get("version").asText();
        inputs = strings(model.get("inputs"));
        mean = doubles(model.get("mean"));
        scale = doubles(model.get("scale"));
        weights = doubles(model.get("weights"));
        intercept = model.get("intercept").asDouble();
        review = model.get("review").asDouble();
        reject = model.get("reject").asDouble();
        reasonCount = model.get("reasons").asInt();
        logCounts = new HashMap<>();
        model.get("log_counts").fields().forEachRemaining(e -> logCounts.put(e.getKey(), e.getValue().asText()));
        if (mean.length != inputs.length || scale.length != inputs.length || weights.length != inputs.length) {
            throw new IllegalArgumentException("model " + version + ": inputs, mean, scale and weights differ in length");
        }
        Map<String, Double> known = inputs(Map.of(), 0L, null, null, null);
        for (String input : inputs) {
            if (!known.containsKey(input)) {
                throw new IllegalArgumentException("model " + version + " wants the input " + input + ", which this "
                        + "scoring function does not compute: rebuild connectors/jvm from the code that trained it");
            }
        }
    }

    /** A scored payment. */
    record Scored(double score, String decision, List<String> reasons) {}

    /**
     * Scores one payment from its features ({@code view__feature} -> value; absent: no row or no value) and what the
     * payment says.
     */
    Scored score(Map<String, Long> features, long paymentTimeMs, Long amountMinor, Integer attempt, String method) {
        Map<String, Double> named = inputs(features, paymentTimeMs, amountMinor, attempt, method);
        double[] values = new double[inputs.length];
        double[] contributions = new double[inputs.length];
        double logit = 0.0;
        for (int i = 0; i < inputs.length; i++) {
            Double value = named.get(inputs[i]);
            if (value == null) {
                throw new IllegalStateException("model " + version + " wants an unknown input " + inputs[i]);
            }
            values[i] = value;
            contributions[i] = (value - mean[i]) / scale[i] * weights[i];
            logit += contributions[i];
        }
        double score = 1.0 / (1.0 + Math.exp(-(logit + intercept)));
        // A score that is not a number (an input out of every range) goes to a human, the schema's safe choice.
        String decision = Double.isNaN(score) ? "REVIEW" : score >= reject ? "REJECT" : score >= review ? "REVIEW"
                : "APPROVE";
        return new Scored(score, decision, reasons(values, contributions));
    }

    /** The inputs that raised the score most, largest first: {@code name=value (+contribution)}. */
    private List<String> reasons(double[] values, double[] contributions) {
        List<Integer> order = new ArrayList<>(inputs.length);
        for (int i = 0; i < inputs.length; i++) {
            order.add(i);
        }
        // Largest first and NaN last, as numpy's argsort of the negated contributions orders them.
        order.sort((a, b) -> Double.isNaN(contributions[a]) || Double.isNaN(contributions[b])
                ? Boolean.compare(Double.isNaN(contributions[a]), Double.isNaN(contributions[b]))
                : Double.compare(contributions[b], contributions[a]));
        List<String> reasons = new ArrayList<>(reasonCount);
        for (int i : order.subList(0, Math.min(reasonCount, order.size()))) {
            if (contributions[i] > 0) {
                reasons.add(inputs[i] + "=" + general3(values[i]) + " (+" + fixed2(contributions[i]) + ")");
            }
        }
        return reasons;
    }

    /** {@code model_inputs} of one payment (NaN stands for a missing value, as in numpy). */
    Map<String, Double> inputs(
            Map<String, Long> features, long paymentTimeMs, Long amountMinor, Integer attempt, String method) {
        double now = paymentTimeMs;
        double amount = amountMinor == null ? 0.0 : amountMinor;
        Map<String, Double> result = new HashMap<>();
        result.put("amount_log", Math.log1p(Math.max(amount, 0.0)));
        result.put("attempt", attempt == null ? 1.0 : attempt);
        result.put("card", "CARD".equals(method) ? 1.0 : 0.0);
        for (Map.Entry<String, String> count : logCounts.entrySet()) {
            result.put(count.getValue(), Math.log1p(Math.max(orZero(feature(features, count.getKey())), 0.0)));
        }
        double payments1d = orZero(feature(features, "user_payments__payments_1d"));
        double amount1d = orZero(feature(features, "user_payments__amount_minor_1d"));
        double usual = amount1d / (payments1d > 0 && amount1d > 0 ? payments1d : Double.NaN);
        result.put("amount_vs_usual_log", Math.log1p(orZero(clipAtZero(amount / usual))));
        double registered = feature(features, "user_account__registered_at_ms");
        result.put("account_unknown", Double.isNaN(registered) ? 1.0 : 0.0);
        result.put("account_age_log", ageLog(now, registered));
        double firstSeen = feature(features, "device_activity__first_seen_ms");
        result.put("device_unknown", Double.isNaN(firstSeen) ? 1.0 : 0.0);
        result.put("device_age_log", ageLog(now, firstSeen));
        result.put("device_younger_than_account",
                clipAtZero(result.get("account_age_log") - result.get("device_age_log")));
        result.put("since_last_payment_activity_log", ageLog(now, feature(features, "user_payments__as_of_ms")));
        result.put("since_last_engagement_log", ageLog(now, feature(features, "user_engagement__as_of_ms")));
        return result;
    }

    private static double feature(Map<String, Long> features, String column) {
        Long value = features.get(column);
        return value == null ? Double.NaN : value.doubleValue();
    }

    /** numpy's {@code nan_to_num(x, nan=0.0, posinf=inf)}: negative infinity becomes the most negative double. */
    private static double nanToNum(double value) {
        if (Double.isNaN(value)) {
            return 0.0;
        }
        return value == Double.NEGATIVE_INFINITY ? -Double.MAX_VALUE : value;
    }

    private static double orZero(double value) {
        return Double.isNaN(value) ? 0.0 : value;
    }

    /** {@code np.clip(x, 0, None)}: NaN stays NaN. */
    private static double clipAtZero(double value) {
        return Double.isNaN(value) ? value : Math.max(value, 0.0);
    }

    private static double ageLog(double now, double epochMs) {
        return nanToNum(Math.log1p(clipAtZero((now - epochMs) / 1000)));
    }

    /** Python's {@code format(value, ".3g")}. */
    static String general3(double value) {
        if (Double.isNaN(value)) {
            return "nan";
        }
        if (Double.isInfinite(value)) {
            return value > 0 ? "inf" : "-inf";
        }
        if (value == 0.0) {
            return (1 / value < 0) ? "-0" : "0";
        }
        BigDecimal rounded = new BigDecimal(value).round(new MathContext(3, RoundingMode.HALF_EVEN));
        int exponent = rounded.precision() - rounded.scale() - 1;
        if (exponent < -4 || exponent >= 3) {
            BigDecimal mantissa = rounded.movePointLeft(exponent);
            String digits = stripZeros(mantissa.toPlainString());
            return digits + "e" + (exponent < 0 ? "-" : "+") + String.format(Locale.ROOT, "%02d", Math.abs(exponent));
        }
        return stripZeros(rounded.setScale(Math.max(0, 2 - exponent), RoundingMode.HALF_EVEN).toPlainString());
    }

    /** Python's {@code format(value, ".2f")} (exact binary value, halves to even). */
    static String fixed2(double value) {
        if (!Double.isFinite(value)) {
            return Double.isNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
        }
        return new BigDecimal(value).setScale(2, RoundingMode.HALF_EVEN).toPlainString();
    }

    private static String stripZeros(String text) {
        if (!text.contains(".")) {
            return text;
        }
        String stripped = text.replaceAll("0+$", "");
        return stripped.endsWith(".") ? stripped.substring(0, stripped.length() - 1) : stripped;
    }

    private static String[] strings(JsonNode array) {
        String[] result = new String[array.size()];
        for (int i = 0; i < result.length; i++) {
            result[i] = array.get(i).asText();
        }
        return result;
    }

    private static double[] doubles(JsonNode array) {
        double[] result = new double[array.size()];
        for (int i = 0; i < result.length; i++) {
            result[i] = array.get(i).asDouble();
        }
        return result;
    }
}
