// A single-node HDFS for the integration tests: a NameNode and one DataNode on 127.0.0.1.
// Prints the hdfs:// URI once the cluster is active, then runs until stdin closes.
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

public final class MiniHdfs {
    public static void main(String[] args) throws Exception {
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, args[0]);
        conf.set("dfs.namenode.rpc-bind-host", "127.0.0.1");
        conf.set("dfs.namenode.http-address", "127.0.0.1:0");
        conf.set("dfs.datanode.address", "127.0.0.1:0");
        conf.set("dfs.datanode.http.address", "127.0.0.1:0");
        conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
        conf.setBoolean("dfs.permissions.enabled", false);
        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf)
            .numDataNodes(1)
            .format(true)
            .build();
        try {
            cluster.waitActive();
            System.out.println("hdfs://127.0.0.1:" + cluster.getNameNodePort());
            System.out.flush();
            while (System.in.read() != -1) {
                // runs until the test closes stdin (or kills the process by pid)
            }
        } finally {
            cluster.shutdown();
        }
    }
}
