// `analytics kafka-mock`: a local Kafka-protocol cluster for development (librdkafka's mock
// brokers, in this process, nothing on disk): start it, then `serve --log kafka --kafka-bootstrap ...`.
using System.CommandLine;
using Analytics.EventLog.Kafka;

namespace Analytics.Host.Cli;

public sealed class KafkaMockCommand : ICommandGroup
{
    public int Order => 50;

    public IEnumerable<Command> Commands()
    {
        var brokers = Settings.Integer("--brokers", "Mock brokers", 1, 16, defaultValue: 3);
        var partitions = Settings.Integer("--partitions", "Partitions of the topic", 1, 1024, defaultValue: 6);
        var topic = new Option<string>("--kafka-topic") { Description = "Topic to create", HelpName = "TOPIC", DefaultValueFactory = _ => "analytics.events" };
        var command = new Command("kafka-mock", "Start a local Kafka-protocol cluster; prints its bootstrap servers") { brokers, partitions, topic };
        command.SetAction(async parse =>
        {
            int brokerCount = parse.GetValue(brokers), partitionCount = parse.GetValue(partitions);
            string topicName = parse.GetValue(topic)!;
            using var cluster = MockKafkaCluster.Start(brokerCount);
            cluster.CreateTopic(topicName, partitionCount, Math.Min(3, brokerCount));
            Console.WriteLine(cluster.BootstrapServers);
            Console.Error.WriteLine($"""
                Kafka mock cluster: {brokerCount} brokers, topic {topicName} with {partitionCount} partitions. Ctrl+C stops it (its data is in memory).
                  ./run.sh serve --demo --log kafka --kafka-bootstrap {cluster.BootstrapServers}
                """);
            var stop = new TaskCompletionSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
            AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.TrySetResult();
            await stop.Task;
            return 0;
        });
        yield return command;
    }
}
