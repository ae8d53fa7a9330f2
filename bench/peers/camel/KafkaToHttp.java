// The Apache Camel peer of make bench's peers rows: Kafka -> aggregate N values (per
// partition, as one JSON array, values joined without parsing) -> HTTP POST. What a team
// that picks Camel would write; Camel's Kafka consumer commits offsets on its own
// (auto-commit), so this route is at-most-once on a crash, not at-least-once.
//
//   java -cp <libs>/*:<classes> KafkaToHttp BOOTSTRAP TOPIC GROUP URL BATCH INTERVAL_MS
import java.io.ByteArrayOutputStream;
import org.apache.camel.AggregationStrategy;
import org.apache.camel.Exchange;
import org.apache.camel.builder.RouteBuilder;
import org.apache.camel.main.Main;

public class KafkaToHttp {
    /** Joins the values of an aggregation into one JSON array, without parsing them. */
    static final class JsonArray implements AggregationStrategy {
        @Override
        public Exchange aggregate(Exchange oldExchange, Exchange newExchange) {
            byte[] value = newExchange.getMessage().getBody(byte[].class);
            if (oldExchange == null) {
                ByteArrayOutputStream out = new ByteArrayOutputStream(256 * 100);
                out.write('[');
                out.writeBytes(value);
                newExchange.getMessage().setBody(out);
                return newExchange;
            }
            ByteArrayOutputStream out = oldExchange.getMessage().getBody(ByteArrayOutputStream.class);
            out.write(',');
            out.writeBytes(value);
            return oldExchange;
        }

        @Override
        public void onCompletion(Exchange exchange) {
            ByteArrayOutputStream out = exchange.getMessage().getBody(ByteArrayOutputStream.class);
            out.write(']');
            exchange.getMessage().setBody(out.toByteArray());
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2], url = args[3];
        int batch = Integer.parseInt(args[4]);
        long intervalMs = Long.parseLong(args[5]);
        String bytes = "org.apache.kafka.common.serialization.ByteArrayDeserializer";
        Main main = new Main();
        main.configure().addRoutesBuilder(new RouteBuilder() {
            @Override
            public void configure() {
                from("kafka:" + topic + "?brokers=" + bootstrap + "&groupId=" + group
                        + "&autoOffsetReset=earliest&maxPollRecords=500"
                        + "&valueDeserializer=" + bytes + "&keyDeserializer=" + bytes)
                    .aggregate(header("CamelKafkaPartition"), new JsonArray())
                        .completionSize(batch)
                        .completionTimeout(intervalMs)
                    .setHeader(Exchange.HTTP_METHOD, constant("POST"))
                    .setHeader(Exchange.CONTENT_TYPE, constant("application/json"))
                    .removeHeaders("CamelKafka*")
                    .to(url);
            }
        });
        main.run();
    }
}
