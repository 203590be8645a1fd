# The Java client's JUnit suite (clients/java), as TAP: Maven offline from
# Debian's repository (/usr/share/maven-repo, through debian-settings.xml),
# with libmsgpack-java and junit4; the local repository and target/ are
# build output.
. "$(dirname "$0")/suite.sh"
suite_need java mvn
suite_need_file /usr/share/maven-repo/org/msgpack/msgpack-core/0.9.3 libmsgpack-java
suite_need_file /usr/share/maven-repo/junit/junit/4.13.2 junit4
suite_need_file /usr/share/maven-repo/org/apache/maven/plugins/maven-surefire-plugin/2.22.3 libsurefire-java
suite_workdir java
suite_run "java client: mvn test (JUnit)" mvn -B -ntp -Dstyle.color=never -s debian-settings.xml \
    -Dmaven.repo.local="$WX_BUILDDIR/clients-build/m2" test
