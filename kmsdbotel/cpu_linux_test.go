package kmsdbotel_test

const rusageThread = 1 // RUSAGE_THREAD
