package com.suuupra.flink.avro;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;

/** Writer schemas by id from a Confluent-compatible registry (Apicurio's /apis/ccompat/v7 or Confluent's). */
final class RegistryLookup {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration TIMEOUT = Duration.ofSeconds(10);

    static final class UnknownSchemaException extends Exception {
        private static final long serialVersionUID = 1L;
        /**
         * The answer may change: the registry has no schema under the id (yet), or answered without a schema text (a
         * proxy's answer, say). Otherwise the id's schema is not Avro, which it stays.
         */
        final boolean mayChange;

        UnknownSchemaException(String message, boolean mayChange) {
            super(message);
            this.mayChange = mayChange;
        }
    }

    static final class IncompatibleSchemaException extends Exception {
        private static final long serialVersionUID = 1L;

        IncompatibleSchemaException(String message) {
            super(message);
        }
    }

    /** The registry did not answer as a registry does: not the record's fault, so the job must not go on. */
    static final class RegistryUnavailableException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        RegistryUnavailableException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final String baseUrl;
    private final HttpClient client;

    RegistryLookup(String baseUrl) {
        this.baseUrl = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
        this.client = HttpClient.newBuilder().connectTimeout(TIMEOUT).build();
    }

    WriterSchema fetch(int id) throws UnknownSchemaException, IncompatibleSchemaException {
        HttpRequest request = HttpRequest.newBuilder(URI.create(baseUrl + "/schemas/ids/" + id))
                .timeout(TIMEOUT).header("Accept", "application/json").GET().build();
        HttpResponse<String> response;
        try {
            response = client.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException error) {
            throw new RegistryUnavailableException("schema registry failed while fetching schema id " + id + " from "
                    + baseUrl + ": " + error, error);
        } catch (InterruptedException error) {
            Thread.currentThread().interrupt();
            throw new RegistryUnavailableException("interrupted while fetching schema id " + id, error);
        }
        JsonNode body;
        try {
            body = JSON.readTree(response.body());
        } catch (IOException error) {
            throw new RegistryUnavailableException("schema registry answered HTTP " + response.statusCode()
                    + " with a body that is not JSON for schema id " + id, error);
        }
        if (response.statusCode() == 404) {
            // 40403: schema not found. Any other 404 (wrong URL) is the deployment's fault, not the record's.
            if (body != null && body.path("error_code").asInt() == 40403) {
                throw new UnknownSchemaException("schema id " + id + " is not in the registry", true);
            }
        }
        if (response.statusCode() != 200 || body == null) {
            throw new RegistryUnavailableException("schema registry answered HTTP " + response.statusCode()
                    + " for schema id " + id + ": " + response.body(), null);
        }
        String type = body.path("schemaType").asText("AVRO");
        if (!type.isEmpty() && !"AVRO".equals(type)) {
            throw new UnknownSchemaException("schema id " + id + " is " + type + ", not Avro", false);
        }
        String text = body.path("schema").asText("");
        if (text.isEmpty()) {
            throw new UnknownSchemaException("schema id " + id + " has no schema text in the registry", true);
        }
        Schema schema;
        try {
            schema = new Schema.Parser().parse(text);
        } catch (AvroRuntimeException error) {
            // SchemaParseException, and AvroTypeException for a default its type cannot hold, among others.
            throw new IncompatibleSchemaException("schema id " + id + " does not parse as Avro: " + error.getMessage());
        }
        if (schema.getType() != Schema.Type.RECORD) {
            throw new IncompatibleSchemaException("schema id " + id + " is not an Avro record schema");
        }
        return new WriterSchema(schema);
    }
}
